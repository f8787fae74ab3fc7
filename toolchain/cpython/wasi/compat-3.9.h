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
/* in wasi-libc's single-threaded pthread stubs, but not declared */
_Noreturn void pthread_exit(void *result);
#endif
