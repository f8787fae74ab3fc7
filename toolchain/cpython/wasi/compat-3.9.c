/* What CPython 3.9 calls and wasi-libc lacks (declared in compat-3.9.h). A guest is one
   process with no other users, processes or pipes: the identity calls answer as root (what
   Docker's python image runs as; boxer's sitecustomize answers for the image's USER), umask
   keeps Linux's default 022 (WASI has no permission bits), and the rest fail as Linux does
   when the thing does not exist (wait: no child; kill: no such process other than itself)
   or with ENOSYS. */
#include <errno.h>
#include <stddef.h>
#include <sys/types.h>
#include "compat-3.9.h"

uid_t getuid(void) { return 0; }
uid_t geteuid(void) { return 0; }
gid_t getgid(void) { return 0; }
gid_t getegid(void) { return 0; }
pid_t getppid(void) { return 0; }

mode_t umask(mode_t mask)
{
    static mode_t current = 022;
    mode_t old = current;
    current = mask & 0777;
    return old;
}

int pipe(int fds[2]) { (void)fds; errno = ENOSYS; return -1; }
int dup(int fd) { (void)fd; errno = ENOSYS; return -1; }
/* system(NULL) asks whether there is a shell: there is none */
int system(const char *command) { if (command == NULL) return 0; errno = ENOSYS; return -1; }
pid_t wait(int *status) { (void)status; errno = ECHILD; return -1; }
int kill(pid_t pid, int sig) { (void)pid; (void)sig; errno = ENOSYS; return -1; }
char *getlogin(void) { errno = ENXIO; return NULL; }
