/* What CPython 3.9 calls unconditionally on POSIX and wasi-libc does not declare (3.11 checks
   each in configure). wasi/compat-3.9.c defines the missing ones; build.py includes this
   header into every interpreter source (CFLAGS_NODIST on make's command line), not into
   configure's tests. */
#ifndef BOXER_COMPAT_39_H
#define BOXER_COMPAT_39_H
#include <sys/types.h>
mode_t umask(mode_t mask);
int dup(int fd);
int dup2(int fd, int fd2);
/* WASI preview 1 cannot make, bind, connect or address a socket (a runtime hands over ones it
   made: boxer's networked runs do); 3.11 leaves these socket methods out, 3.9's socketmodule.c
   calls them unconditionally, so they fail with ENOSYS */
#include <sys/socket.h>
#include <netinet/in.h>
int socket(int domain, int type, int protocol);
int bind(int fd, const struct sockaddr *addr, socklen_t len);
int connect(int fd, const struct sockaddr *addr, socklen_t len);
int listen(int fd, int backlog);
int setsockopt(int fd, int level, int name, const void *value, socklen_t len);
int getsockname(int fd, struct sockaddr *restrict addr, socklen_t *restrict len);
ssize_t recvfrom(int fd, void *restrict buf, size_t len, int flags,
                 struct sockaddr *restrict addr, socklen_t *restrict addrlen);
ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
               socklen_t addrlen);
/* inet_ntoa is plain formatting: wasi-libc has inet_ntop but not this one */
char *inet_ntoa(struct in_addr in);
/* in wasi-libc's single-threaded pthread stubs, but not declared */
_Noreturn void pthread_exit(void *result);
#endif
