/* chmod for WASI preview 1, linked into the interpreter with wasm-ld's --wrap.
 *
 * WASI preview 1 has no permission bits: a file's mode cannot be read (stat reports only its
 * type) nor set. wasi-libc answers chmod/fchmod/fchmodat with ENOSYS, and CPython 3.13's WASI
 * configuration turns os.chmod into a no-op that succeeds even on a missing path. Either breaks
 * ordinary programs (shutil.copy, shutil.copytree, setuptools' sdist, pip) or hides errors.
 *
 * Here changing a mode is a successful no-op on a file that exists, and fails exactly as stat
 * would otherwise (ENOENT, ENOTDIR, EBADF, EACCES outside the preopens...): what a program
 * sees on a Linux file system that ignores modes. The requested mode is not recorded
 * anywhere, as there is nowhere in WASI to record it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

int __wrap_chmod(const char *path, mode_t mode) {
    struct stat st;
    (void)mode;
    return stat(path, &st);
}

int __wrap_fchmod(int fd, mode_t mode) {
    struct stat st;
    (void)mode;
    return fstat(fd, &st);
}

int __wrap_fchmodat(int dirfd, const char *path, mode_t mode, int flag) {
    struct stat st;
    (void)mode;
    if (flag & ~AT_SYMLINK_NOFOLLOW) {
        errno = EINVAL;
        return -1;
    }
    return fstatat(dirfd, path, &st, flag);
}
