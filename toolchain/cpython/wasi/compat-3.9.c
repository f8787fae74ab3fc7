/* What CPython 3.9 calls unconditionally and wasi-libc lacks (declared in compat-3.9.h):
   umask keeps Linux's default 022 and returns the previous mask (WASI has no permission
   bits, so it changes nothing else); WASI preview 1 cannot duplicate a descriptor, so dup
   and dup2 fail with ENOSYS as 3.11's os.dup does not exist at all. The socket calls WASI
   preview 1 lacks fail with ENOSYS (compat-3.9.h says why). */
#include <errno.h>
#include <stdio.h>
#include <sys/types.h>
#include "compat-3.9.h"

mode_t umask(mode_t mask)
{
    static mode_t current = 022;
    mode_t old = current;
    current = mask & 0777;
    return old;
}

int dup(int fd) { (void)fd; errno = ENOSYS; return -1; }
int dup2(int fd, int fd2) { (void)fd; (void)fd2; errno = ENOSYS; return -1; }

int socket(int domain, int type, int protocol)
{ (void)domain; (void)type; (void)protocol; errno = ENOSYS; return -1; }
int bind(int fd, const struct sockaddr *addr, socklen_t len)
{ (void)fd; (void)addr; (void)len; errno = ENOSYS; return -1; }
int connect(int fd, const struct sockaddr *addr, socklen_t len)
{ (void)fd; (void)addr; (void)len; errno = ENOSYS; return -1; }
int listen(int fd, int backlog) { (void)fd; (void)backlog; errno = ENOSYS; return -1; }
int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{ (void)fd; (void)level; (void)name; (void)value; (void)len; errno = ENOSYS; return -1; }
int getsockname(int fd, struct sockaddr *restrict addr, socklen_t *restrict len)
{ (void)fd; (void)addr; (void)len; errno = ENOSYS; return -1; }
ssize_t recvfrom(int fd, void *restrict buf, size_t len, int flags,
                 struct sockaddr *restrict addr, socklen_t *restrict addrlen)
{ (void)fd; (void)buf; (void)len; (void)flags; (void)addr; (void)addrlen; errno = ENOSYS; return -1; }
ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
               socklen_t addrlen)
{ (void)fd; (void)buf; (void)len; (void)flags; (void)addr; (void)addrlen; errno = ENOSYS; return -1; }

char *inet_ntoa(struct in_addr in)
{
    static char text[16];
    const unsigned char *b = (const unsigned char *)&in.s_addr;
    snprintf(text, sizeof text, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return text;
}
