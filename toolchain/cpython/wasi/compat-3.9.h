/* Declarations CPython 3.9 calls unconditionally on POSIX and wasi-libc leaves out (3.11
   added a configure check and an #ifdef for each). wasi/compat-3.9.c defines them; build.py
   includes this header into every interpreter source (CFLAGS_NODIST on make's command line),
   not into configure's tests. */
#ifndef BOXER_COMPAT_39_H
#define BOXER_COMPAT_39_H
#include <sys/types.h>
uid_t getuid(void);
uid_t geteuid(void);
gid_t getgid(void);
gid_t getegid(void);
pid_t getppid(void);
int pipe(int fds[2]);
mode_t umask(mode_t mask);
int system(const char *command);
pid_t wait(int *status);
int kill(pid_t pid, int sig);
int dup(int fd);
char *getlogin(void);
#endif
