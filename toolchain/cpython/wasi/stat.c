/* stat for WASI preview 1, linked into the interpreter with wasm-ld's --wrap.
 *
 * WASI preview 1 has no permission bits: wasi-libc's stat family reports a file's type only
 * (st_mode 0o100000 for a regular file). Programs that copy modes then record "no access at
 * all": a tarball made in the guest (tarfile, setup.py sdist) has members of mode 000, and
 * zipfile, shutil.copystat and pip's wheel builder do the same.
 *
 * Here a mode without permission bits gets what a Linux file system that ignores modes (as
 * vfat mounted with its defaults) reports: 0644 for files, 0755 for directories, 0777 for
 * symbolic links, 0666 for character devices (/dev/null). The host cannot tell us more (WASI
 * preview 1 has no executable bit), and a mode that has bits is left as it is, so applying
 * this twice (stat calls fstatat inside wasi-libc) changes nothing.
 */
#include <fcntl.h>
#include <sys/stat.h>

int __real_stat(const char *restrict path, struct stat *restrict st);
int __real_lstat(const char *restrict path, struct stat *restrict st);
int __real_fstat(int fd, struct stat *st);
int __real_fstatat(int dirfd, const char *restrict path, struct stat *restrict st, int flag);

static int with_mode(int rc, struct stat *st) {
    if (rc == 0 && (st->st_mode & 07777) == 0) {
        if (S_ISDIR(st->st_mode))
            st->st_mode |= 0755;
        else if (S_ISLNK(st->st_mode))
            st->st_mode |= 0777;
        else if (S_ISCHR(st->st_mode))
            st->st_mode |= 0666;
        else
            st->st_mode |= 0644;
    }
    return rc;
}

int __wrap_stat(const char *restrict path, struct stat *restrict st) {
    return with_mode(__real_stat(path, st), st);
}

int __wrap_lstat(const char *restrict path, struct stat *restrict st) {
    return with_mode(__real_lstat(path, st), st);
}

int __wrap_fstat(int fd, struct stat *st) {
    return with_mode(__real_fstat(fd, st), st);
}

int __wrap_fstatat(int dirfd, const char *restrict path, struct stat *restrict st, int flag) {
    return with_mode(__real_fstatat(dirfd, path, st, flag), st);
}
