/* What CPython 3.9 calls unconditionally and wasi-libc lacks (declared in compat-3.9.h):
   umask keeps Linux's default 022 and returns the previous mask (WASI has no permission
   bits, so it changes nothing else); WASI preview 1 cannot duplicate a descriptor, so dup
   and dup2 fail with ENOSYS as 3.11's os.dup does not exist at all. */
#include <errno.h>
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
