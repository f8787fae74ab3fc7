/* SQLite for WASI preview 1: the amalgamation with normal locking inside one process.
 *
 * WASI has no file locks. SQLite's own WASI configuration therefore defaults to the
 * "unix-dotfile" VFS, where every lock (even a reader's) is one lock directory beside the
 * database: a second connection to the same file in the same program gets "database is
 * locked" whenever the first is inside a transaction or has a statement open, and a
 * program killed inside a transaction leaves the database locked for good.
 *
 * A guest is one process that nothing else can reach, as boxer's fcntl stand-in assumes.
 * SQLite's "unix" VFS already coordinates the connections of one process itself (it keeps
 * every file's lock state in memory, shared by its connections, because POSIX locks are
 * per process); it asks the operating system only to exclude other processes. Here those
 * requests succeed: F_SETLK and F_SETLKW take the lock, F_GETLK finds no other holder. So
 * two connections lock against each other exactly as on Linux (shared readers, one
 * writer, SQLITE_BUSY on a conflict), and no lock outlives the program. What this cannot
 * do is exclude another boxer run that mounts the same file: nothing in WASI can.
 *
 * build.py compiles this file instead of sqlite3.c, with -DSQLITE_DEFAULT_UNIX_VFS="unix"
 * -DSQLITE_EXTRA_INIT=boxer_sqlite3_init (sqlite3_initialize calls it).
 */
#include "sqlite3.c"

/* F_GETLK, F_SETLK, F_SETLKW and struct flock are the ones sqlite3.c defines for WASI
 * (wasi-libc has none): only SQLite's own calls carry them. */
static int boxer_fcntl(int fd, int op, ...) {
    va_list ap;
    void *arg;
    va_start(ap, op);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (op == F_SETLK || op == F_SETLKW)
        return 0;
    if (op == F_GETLK) {
        ((struct flock *)arg)->l_type = F_UNLCK;
        return 0;
    }
    return fcntl(fd, op, arg);
}

int boxer_sqlite3_init(const char *unused) {
    sqlite3_vfs *vfs = sqlite3_vfs_find("unix");
    (void)unused;
    if (vfs == 0 || vfs->xSetSystemCall == 0)
        return SQLITE_ERROR;
    /* aSyscall is one table for every unix VFS */
    return vfs->xSetSystemCall(vfs, "fcntl", (sqlite3_syscall_ptr)boxer_fcntl);
}
