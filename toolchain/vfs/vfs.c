/* vfs: the filesystem, argv and environment of a standalone boxer module.
 *
 * `boxer export --format standalone` merges this module into an image's runtime (CPython, a C
 * program...) so that the runtime's `wasi_snapshot_preview1` imports of files, argv and env
 * are answered here instead of by the host: reads come from the image's files, which are
 * kept in a passive data segment of the merged module (read with `boxer.blob_read`, which the
 * merger writes as one `memory.init`); writes go to an in-memory layer that ends with the run.
 * stdin/stdout/stderr (fds 0-2), clocks, random, poll and exit stay the host's: those imports
 * are not exported here, or are forwarded for fds 0-2.
 *
 * Freestanding (no libc), position-independent: it shares the runtime's one linear memory,
 * its static data and stack sit past the runtime's initial memory (the merger sets
 * __memory_base), and its heap is pages it grows itself, which the runtime's sbrk-based
 * malloc treats as foreign and steps over.
 *
 * The blob (little-endian), written by boxer_py/image/standalone.py:
 *   header  u32 x 13: "BXVF" version nnodes nodes_off strings_off strings_len argv_off argv_len
 *           n_entry n_cmd n_env program (the node of the module's own program file) n_pre
 *   nodes   nnodes x {u8 kind, u8 pad[3], u32 parent, u32 name_off, u32 name_len, u64 size,
 *                     u32 data_off, u32 mtime}: node 0 is "/", parents come before children
 *   strings names (by offset into the strings area)
 *   argv    n_entry + n_cmd + n_env + 1 + n_pre NUL-terminated strings: ENTRYPOINT, CMD, ENV,
 *           WORKDIR, and the words put after argv[0], followed by argv[0] again, whatever the
 *           command (a reactor CPython's `-c` prelude, which runs the rest: registry/standalone.py)
 *   data    file contents and symlink targets, at data_off
 *
 * Build: make -C toolchain/vfs (clang-19, wasm-ld-19); `make -C toolchain/vfs check` rebuilds
 * and compares with the vendored src/boxer_py/image/vfs.wasm.
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;
typedef long long i64;

#define REAL(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))
#define SHIM(name) __attribute__((export_name(#name)))

REAL(args_sizes_get) i32 real_args_sizes_get(u32, u32);
REAL(args_get) i32 real_args_get(u32, u32);
REAL(environ_sizes_get) i32 real_environ_sizes_get(u32, u32);
REAL(environ_get) i32 real_environ_get(u32, u32);
REAL(clock_time_get) i32 real_clock_time_get(u32, u64, u32);
REAL(fd_read) i32 real_fd_read(i32, u32, u32, u32);
REAL(fd_write) i32 real_fd_write(i32, u32, u32, u32);
REAL(fd_pread) i32 real_fd_pread(i32, u32, u32, u64, u32);
REAL(fd_pwrite) i32 real_fd_pwrite(i32, u32, u32, u64, u32);
REAL(fd_seek) i32 real_fd_seek(i32, i64, u32, u32);
REAL(fd_tell) i32 real_fd_tell(i32, u32);
REAL(fd_close) i32 real_fd_close(i32);
REAL(fd_sync) i32 real_fd_sync(i32);
REAL(fd_datasync) i32 real_fd_datasync(i32);
REAL(fd_fdstat_get) i32 real_fd_fdstat_get(i32, u32);
REAL(fd_fdstat_set_flags) i32 real_fd_fdstat_set_flags(i32, u32);
REAL(fd_filestat_get) i32 real_fd_filestat_get(i32, u32);
REAL(fd_filestat_set_size) i32 real_fd_filestat_set_size(i32, u64);
REAL(fd_filestat_set_times) i32 real_fd_filestat_set_times(i32, u64, u64, u32);
REAL(fd_advise) i32 real_fd_advise(i32, u64, u64, u32);
REAL(fd_allocate) i32 real_fd_allocate(i32, u64, u64);
REAL(proc_exit) void real_proc_exit(u32);
__attribute__((import_module("boxer"), import_name("blob_read"))) void blob_read(u32 dst, u32 off, u32 len);
__attribute__((import_module("boxer"), import_name("blob_size"))) u32 blob_size(void);

enum { E_ACCES = 2, E_BADF = 8, E_EXIST = 20, E_INVAL = 28, E_IO = 29, E_ISDIR = 31, E_LOOP = 32,
       E_MFILE = 33, E_NAMETOOLONG = 37, E_NOENT = 44, E_NOMEM = 48, E_NOSPC = 51, E_NOTDIR = 54,
       E_NOTEMPTY = 55, E_NOTSUP = 58, E_PERM = 63, E_SPIPE = 70, E_FBIG = 22 };
enum { T_DIR = 3, T_FILE = 4, T_LINK = 7 };
enum { O_CREAT = 1, O_DIRECTORY = 2, O_EXCL = 4, O_TRUNC = 8 };
enum { FDF_APPEND = 1 };
#define R_FD_READ (1ull << 1)
#define R_FD_WRITE (1ull << 6)
#define ALL_RIGHTS 0x1fffffffull
#define MAX_FDS 1024
#define MAX_FILE (1u << 30)

struct node {
    u32 kind, parent, name, namelen;
    u64 size;
    u32 data, cap;   /* cap == 0: content at blob offset `data`; else a heap buffer */
    u32 kids, nkids, kidcap, live;
    u64 mtime, atime, ctime;
};
struct fdesc { u32 used, node; u64 pos, rights; u32 flags; };

static struct node *nodes;
static u32 nnodes, nodecap;
static struct fdesc fds[MAX_FDS];
static u32 heap, heap_end;
static u32 freelist[32];
static u32 argv_data, argv_size, n_entry, n_cmd, n_env, n_pre, program, argv0;
static u32 ready;

/* ---- memory ---- */

static void copy(void *dst, const void *src, u32 n) { __builtin_memcpy(dst, src, n); }
static void zero(void *dst, u32 n) { __builtin_memset(dst, 0, n); }
static void put32(u32 at, u32 v) { copy((void *)at, &v, 4); }
static void put64(u32 at, u64 v) { copy((void *)at, &v, 8); }
static u32 get32(u32 at) { u32 v; copy(&v, (void *)at, 4); return v; }
static u64 get64(u32 at) { u64 v; copy(&v, (void *)at, 8); return v; }

static u32 slen(u32 s) {
    u32 n = 0;
    while (((volatile u8 *)s)[n]) n++;
    return n;
}

static u32 same(const u8 *a, const u8 *b, u32 n) {
    for (u32 i = 0; i < n; i++) if (a[i] != b[i]) return 0;
    return 1;
}

static u32 size_class(u32 n) {
    u32 c = 4;
    while ((1u << c) < n) c++;
    return c;
}

/* Blocks of powers of two, never returned to the host; freed blocks are reused. */
static u32 alloc(u32 n) {
    if (n > MAX_FILE) return 0;
    u32 c = size_class(n + 8), size = 1u << c;
    if (freelist[c]) {
        u32 block = freelist[c];
        freelist[c] = get32(block);
        return block + 8;
    }
    if (heap_end - heap < size) {
        u32 want = size > (1u << 20) ? size : (1u << 20);
        i32 old = __builtin_wasm_memory_grow(0, (want + 65535) >> 16);
        if (old < 0) return 0;
        u32 start = (u32)old << 16;
        if (start != heap_end) heap = start;
        heap_end = start + (((want + 65535) >> 16) << 16);
    }
    u32 block = heap;
    heap += size;
    put32(block + 4, c);
    return block + 8;
}

static void release(u32 ptr) {
    if (!ptr) return;
    u32 c = get32(ptr - 4);
    put32(ptr - 8, freelist[c]);
    freelist[c] = ptr - 8;
}

static u32 capacity(u32 ptr) { return (1u << get32(ptr - 4)) - 8; }

static u64 now(void) {
    u64 t = 0;
    real_clock_time_get(0, 1, (u32)&t);
    return t;
}

/* ---- the tree ---- */

static i32 new_node(u32 kind, u32 parent, const u8 *name, u32 namelen) {
    if (nnodes == nodecap) {
        u32 cap = nodecap * 2 + 64;
        u32 grown = alloc(cap * sizeof(struct node));
        if (!grown) return -E_NOMEM;
        copy((void *)grown, nodes, nnodes * sizeof(struct node));
        release((u32)nodes);
        nodes = (struct node *)grown;
        nodecap = cap;
    }
    u32 id = nnodes++;
    struct node *n = &nodes[id];
    zero(n, sizeof *n);
    n->kind = kind;
    n->parent = parent;
    n->live = 1;
    if (namelen) {
        u32 copy_at = alloc(namelen);
        if (!copy_at) return -E_NOMEM;
        copy((void *)copy_at, name, namelen);
        n->name = copy_at;
        n->namelen = namelen;
    }
    n->mtime = n->atime = n->ctime = now();
    return (i32)id;
}

static i32 attach(u32 dir, u32 kid) {
    struct node *d = &nodes[dir];
    if (d->nkids == d->kidcap) {
        u32 cap = d->kidcap * 2 + 8, grown = alloc(cap * 4);
        if (!grown) return -E_NOMEM;
        copy((void *)grown, (void *)d->kids, d->nkids * 4);
        release(d->kids);
        d->kids = grown;
        d->kidcap = cap;
    }
    put32(d->kids + 4 * d->nkids++, kid);
    nodes[kid].parent = dir;
    return 0;
}

static void detach(u32 kid) {
    struct node *d = &nodes[nodes[kid].parent];
    for (u32 i = 0; i < d->nkids; i++) {
        if (get32(d->kids + 4 * i) == kid) {
            copy((void *)(d->kids + 4 * i), (void *)(d->kids + 4 * i + 4), (d->nkids - i - 1) * 4);
            d->nkids--;
            break;
        }
    }
    d->mtime = now();
}

static i32 init(void) {
    u32 header[13];
    if (blob_size() < sizeof header) return -E_IO;
    blob_read((u32)header, 0, sizeof header);
    if (header[0] != 0x46565842 || header[1] != 3) return -E_IO;
    u32 count = header[2];
    nodecap = count + 64;
    nodes = (struct node *)alloc(nodecap * sizeof(struct node));
    u32 raw = alloc(count * 32), strings = alloc(header[5] + 1);
    if (!nodes || !raw || !strings) return -E_NOMEM;
    blob_read(raw, header[3], count * 32);
    blob_read(strings, header[4], header[5]);
    n_entry = header[8];
    n_cmd = header[9];
    n_env = header[10];
    program = header[11];
    n_pre = header[12];
    argv_data = alloc(header[7] + 1);
    if (!argv_data) return -E_NOMEM;
    blob_read(argv_data, header[6], header[7]);
    argv_size = header[7];
    for (u32 i = 0; i < count; i++) {
        u32 at = raw + 32 * i;
        struct node *n = &nodes[i];
        zero(n, sizeof *n);
        n->kind = *(u8 *)at;
        n->parent = get32(at + 4);
        n->name = strings + get32(at + 8);
        n->namelen = get32(at + 12);
        n->size = get64(at + 16);
        n->data = get32(at + 24);
        n->mtime = n->atime = n->ctime = (u64)get32(at + 28) * 1000000000ull;
        n->live = 1;
        if (i && attach(n->parent, i) < 0) return -E_NOMEM;
    }
    release(raw);
    nnodes = count;
    fds[3].used = 1;   /* the preopened "/" */
    fds[3].node = 0;
    fds[3].rights = ALL_RIGHTS;
    ready = 1;
    return 0;
}

#define READY() do { if (!ready) { i32 e_ = init(); if (e_ < 0) return -e_; } } while (0)

static i32 find_kid(u32 dir, const u8 *name, u32 len) {
    struct node *d = &nodes[dir];
    for (u32 i = 0; i < d->nkids; i++) {
        u32 kid = get32(d->kids + 4 * i);
        struct node *k = &nodes[kid];
        if (k->namelen == len && same((const u8 *)k->name, name, len)) return (i32)kid;
    }
    return -E_NOENT;
}

/* Resolves `path` from `dir` like a chroot: ".." stops at "/", absolute symlink targets start
 * at "/". Leaves the last component unresolved when `parent_only` (for creating and removing:
 * `last` and `lastlen` name it, empty for "." and trailing slashes). */
static i32 walk(u32 dir, const u8 *path, u32 len, u32 follow, u32 parent_only, const u8 **last, u32 *lastlen,
                u32 *must_dir, u32 *hops) {
    u32 cur = dir, i = 0, inside = 0;   /* inside: below a file, where only an alias's link leads on */
    if (len && path[0] == '/') cur = 0;
    while (i < len) {
        while (i < len && path[i] == '/') i++;
        if (i == len) { if (must_dir) *must_dir = 1; break; }
        u32 start = i;
        while (i < len && path[i] != '/') i++;
        const u8 *name = path + start;
        u32 n = i - start;
        u32 final = 1;
        for (u32 j = i; j < len; j++) if (path[j] != '/') { final = 0; break; }
        if (final && i < len && must_dir) *must_dir = 1;
        /* A file with kids: an image's alias below it (boxer.alias:, e.g. a directory inside the
         * stdlib zip's path), looked through to the alias's link only: the directories on the
         * way are not there for anything else (nothing is found, created or removed in them). */
        if (nodes[cur].kind != T_DIR) {
            if (!nodes[cur].nkids) return -E_NOTDIR;
            inside = 1;
        }
        if (final && parent_only) {
            if (inside) return -E_NOTDIR;
            if (n == 1 && name[0] == '.') n = 0;
            if (n > 255) return -E_NAMETOOLONG;
            *last = name;
            *lastlen = n;
            return (i32)cur;
        }
        if (n == 1 && name[0] == '.') continue;
        if (n == 2 && name[0] == '.' && name[1] == '.') { cur = nodes[cur].parent; continue; }
        i32 kid = find_kid(cur, name, n);
        if (kid < 0) return kid;
        if (nodes[kid].kind == T_LINK && (!final || follow)) {
            if (++*hops > 40) return -E_LOOP;
            struct node *l = &nodes[kid];
            u32 tlen = (u32)l->size, target = alloc(tlen + 1);
            if (!target) return -E_NOMEM;
            if (l->cap) copy((void *)target, (void *)l->data, tlen);
            else blob_read(target, l->data, tlen);
            i32 to = walk(cur, (const u8 *)target, tlen, 1, 0, 0, 0, 0, hops);
            release(target);
            if (to < 0) return to;
            cur = (u32)to;
            inside = 0;
            continue;
        }
        cur = (u32)kid;
    }
    if (inside && nodes[cur].kind != T_LINK) return -E_NOTDIR;
    if (parent_only) { *last = path; *lastlen = 0; }
    return (i32)cur;
}

static i32 lookup(u32 fd, u32 path, u32 len, u32 follow) {
    if (fd >= MAX_FDS || !fds[fd].used) return -E_BADF;
    u32 hops = 0, must_dir = 0;
    i32 node = walk(fds[fd].node, (const u8 *)path, len, follow, 0, 0, 0, &must_dir, &hops);
    if (node >= 0 && must_dir && nodes[node].kind != T_DIR) return -E_NOTDIR;
    return node;
}

/* The directory that would hold `path`'s last component, and that component's name. */
static i32 parent_of(u32 fd, u32 path, u32 len, const u8 **name, u32 *namelen, u32 *must_dir) {
    if (fd >= MAX_FDS || !fds[fd].used) return -E_BADF;
    u32 hops = 0;
    *must_dir = 0;
    return walk(fds[fd].node, (const u8 *)path, len, 1, 1, name, namelen, must_dir, &hops);
}

/* Makes a file's content a heap buffer of at least `size` bytes (copy on first write). */
static i32 writable(u32 id, u64 size) {
    struct node *n = &nodes[id];
    if (size > MAX_FILE) return -E_FBIG;
    if (n->cap && capacity(n->data) >= size) return 0;
    u32 want = size > n->size ? (u32)size : (u32)n->size;
    if (want < 64) want = 64;
    u32 buf = alloc(want + want / 2);
    if (!buf) return -E_NOSPC;
    u32 cap = capacity(buf);
    if (n->cap) { copy((void *)buf, (void *)n->data, (u32)n->size); release(n->data); }
    else if (n->size) blob_read(buf, n->data, (u32)n->size);
    zero((void *)(buf + (u32)n->size), cap - (u32)n->size);
    n = &nodes[id];
    n->data = buf;
    n->cap = cap;
    return 0;
}

static i32 resize(u32 id, u64 size) {
    i32 e = writable(id, size);
    if (e < 0) return e;
    struct node *n = &nodes[id];
    if (size < n->size) zero((void *)(n->data + (u32)size), (u32)(n->size - size));
    n->size = size;
    n->mtime = n->ctime = now();
    return 0;
}

static void filestat(u32 id, u32 out) {
    struct node *n = &nodes[id];
    zero((void *)out, 64);
    put64(out, 1);
    put64(out + 8, id + 1);
    *(u8 *)(out + 16) = (u8)n->kind;
    put64(out + 24, 1);
    put64(out + 32, n->kind == T_DIR ? 4096 : n->size);
    put64(out + 40, n->atime);
    put64(out + 48, n->mtime);
    put64(out + 56, n->ctime);
}

static i32 new_fd(void) {
    for (u32 i = 4; i < MAX_FDS; i++) if (!fds[i].used) return (i32)i;
    return -E_MFILE;
}

#define VFD(fd) ((u32)(fd) >= 3 && (u32)(fd) < MAX_FDS && fds[fd].used)
#define CHECK_FD(fd) do { READY(); if (!VFD(fd)) return E_BADF; } while (0)

/* ---- argv and environment ---- */

/* Ends the run with "NAME: WHAT" on stderr and status 125: WASI allows no 126/127, the statuses
 * `boxer run` gives a command that is not found or cannot run. */
static void complain(u32 name, const char *what) {
    u32 parts[2] = {name, (u32)what};
    for (u32 i = 0; i < 2; i++) {
        u32 at = parts[i], left = slen(at);
        while (left) {
            u32 iov[2] = {at, left}, written = 0;
            if (real_fd_write(2, (u32)iov, 1, (u32)&written) || !written) break;
            at += written;
            left -= written;
        }
    }
    real_proc_exit(125);
}

static u32 is_python(u32 name) {
    u32 n = slen(name);
    if (n < 6 || !same((const u8 *)name, (const u8 *)"python", 6)) return 0;
    for (u32 i = 6; i < n; i++) {
        u8 c = *(u8 *)(name + i);
        if (c != '.' && (c < '0' || c > '9')) return 0;
    }
    for (u32 i = 0; i < n; i++) if (*(u8 *)(name + i) == '/') return 0;
    return 1;
}

/* The value of `PATH` among NUL-separated `name=value` words at `list` (count `n`, pointers). */
static u32 path_in(u32 list, u32 n) {
    u32 found = 0;
    for (u32 i = 0; i < n; i++) {
        u32 w = get32(list + 4 * i);
        if (same((const u8 *)w, (const u8 *)"PATH=", 5)) found = w + 5;
    }
    return found;
}

/* A command given after the module (the image has no ENTRYPOINT) must name this module's
 * program, found as `boxer run` finds it: through PATH, or from WORKDIR when it has a slash.
 * Returns what argv[0] becomes: the path it was found at for a `python*` name (as boxer run
 * does for CPython, which cannot search PATH itself), else the name as given. */
static u32 command(u32 name) {
    u32 s = argv_data;
    for (u32 i = 0; i < n_entry + n_cmd; i++) s += slen(s) + 1;
    u32 envs = s, path = 0;
    for (u32 i = 0; i < n_env; i++) {
        if (same((const u8 *)s, (const u8 *)"PATH=", 5)) path = s + 5;
        s += slen(s) + 1;
    }
    u32 workdir = s, hostc = 0, hostsize = 0;
    (void)envs;
    real_environ_sizes_get((u32)&hostc, (u32)&hostsize);
    if (hostc) {
        u32 list = alloc(hostc * 4), buf = alloc(hostsize + 1);
        if (list && buf) {
            real_environ_get(list, buf);
            u32 host = path_in(list, hostc);
            if (host) path = host;
        }
    }
    u32 namelen = slen(name), slash = 0;
    for (u32 i = 0; i < namelen; i++) if (*(u8 *)(name + i) == '/') slash = 1;
    u32 pathlen = path ? slen(path) : 0, start = 0;
    const char *default_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    if (!path) { path = (u32)default_path; pathlen = slen(path); }
    for (;;) {
        u32 end = start;
        if (!slash) while (end < pathlen && *(u8 *)(path + end) != ':') end++;
        u32 dirlen = slash ? 0 : end - start, wlen = slen(workdir);
        u32 cand = alloc(wlen + dirlen + namelen + 3), at = 0;
        if (!cand) return name;
        u32 absolute = slash ? *(u8 *)name == '/' : (dirlen && *(u8 *)(path + start) == '/');
        if (!absolute) { copy((void *)cand, (void *)workdir, wlen); at = wlen; *(u8 *)(cand + at++) = '/'; }
        if (!slash) {
            if (!dirlen) *(u8 *)(cand + at++) = '.';
            copy((void *)(cand + at), (void *)(path + start), dirlen);
            at += dirlen;
            *(u8 *)(cand + at++) = '/';
        }
        copy((void *)(cand + at), (void *)name, namelen);
        at += namelen;
        *(u8 *)(cand + at) = 0;
        u32 hops = 0;
        i32 id = walk(0, (const u8 *)cand, at, 1, 0, 0, 0, 0, &hops);
        if (id >= 0 && nodes[id].kind == T_FILE) {
            if ((u32)id != program) complain(name, ": not this module's program (a standalone module runs only its image's command)\n");
            return is_python(name) ? cand : name;
        }
        release(cand);
        if (slash || end >= pathlen) break;
        start = end + 1;
    }
    complain(name, ": not found\n");
    return name;
}

/* Appends the string at `w` to the list being counted (and written, when `list` is set); for
 * argv (`pre`), right after argv[0], the n_pre words stored past WORKDIR and argv[0] again. */
static void emit(u32 list, u32 buf, u32 *n, u32 *size, u32 w, u32 pre) {
    u32 len = slen(w);
    if (list) { put32(list + 4 * *n, buf + *size); copy((void *)(buf + *size), (void *)w, len + 1); }
    *n += 1;
    *size += len + 1;
    if (!pre || *n != 1 || !n_pre) return;
    u32 s = argv_data;
    for (u32 i = 0; i < n_entry + n_cmd + n_env + 1; i++) s += slen(s) + 1;
    for (u32 i = 0; i < n_pre; i++, s += slen(s) + 1) {
        u32 l = slen(s);
        if (list) { put32(list + 4 * *n, buf + *size); copy((void *)(buf + *size), (void *)s, l + 1); }
        *n += 1;
        *size += l + 1;
    }
    if (list) { put32(list + 4 * *n, buf + *size); copy((void *)(buf + *size), (void *)w, len + 1); }
    *n += 1;
    *size += len + 1;
}

/* argv: ENTRYPOINT + (the arguments after the module's name, else CMD); env: the image's ENV,
 * then the host's variables (a name the host sets wins). */
static u32 argv_words(u32 *count, u32 *bytes, u32 list, u32 buf, u32 env) {
    u32 n = 0, size = 0, s = argv_data;
    u32 first = env ? n_entry + n_cmd : 0, take = env ? n_env : n_entry;
    u32 hostc = 0, hostsize = 0;
    if (env) real_environ_sizes_get((u32)&hostc, (u32)&hostsize);
    else real_args_sizes_get((u32)&hostc, (u32)&hostsize);
    u32 use_cmd = !env && hostc <= 1;
    if (!env && !use_cmd) take = n_entry;
    else if (!env) take = n_entry + n_cmd;
    u32 hostlist = 0, hostbuf = 0;
    if (hostc) {
        hostlist = alloc(hostc * 4);
        hostbuf = alloc(hostsize + 1);
        if (!hostlist || !hostbuf) return E_NOMEM;
        if (env) real_environ_get(hostlist, hostbuf);
        else real_args_get(hostlist, hostbuf);
    }
    for (u32 i = 0; i < first; i++) s += slen(s) + 1;
    for (u32 i = 0; i < take; i++) {
        u32 len = slen(s);
        u32 overridden = 0;
        if (env) {
            u32 eq = 0;
            while (eq < len && *(u8 *)(s + eq) != '=') eq++;
            for (u32 j = 0; j < hostc; j++) {
                u32 h = get32(hostlist + 4 * j);
                if (same((const u8 *)h, (const u8 *)s, eq + 1)) overridden = 1;
            }
        }
        if (!overridden) emit(list, buf, &n, &size, s, !env);
        s += len + 1;
    }
    for (u32 j = env ? 0 : 1; j < hostc; j++) {
        u32 h = get32(hostlist + 4 * j);
        if (!env && j == 1 && !n_entry) {
            if (!argv0) argv0 = command(h);
            if (argv0 != h) {   /* the copy in hostbuf changes with every call: keep the found path */
                h = argv0;
            } else {
                argv0 = 0;
            }
        }
        emit(list, buf, &n, &size, h, !env);
    }
    release(hostlist);
    release(hostbuf);
    if (count) put32((u32)count, n);
    if (bytes) put32((u32)bytes, size);
    return 0;
}

SHIM(args_sizes_get) i32 args_sizes_get(u32 argc, u32 size) {
    READY();
    return (i32)argv_words((u32 *)argc, (u32 *)size, 0, 0, 0);
}
SHIM(args_get) i32 args_get(u32 list, u32 buf) {
    READY();
    return (i32)argv_words(0, 0, list, buf, 0);
}
SHIM(environ_sizes_get) i32 environ_sizes_get(u32 count, u32 size) {
    READY();
    return (i32)argv_words((u32 *)count, (u32 *)size, 0, 0, 1);
}
SHIM(environ_get) i32 environ_get(u32 list, u32 buf) {
    READY();
    return (i32)argv_words(0, 0, list, buf, 1);
}

/* ---- descriptors ---- */

SHIM(fd_prestat_get) i32 fd_prestat_get(i32 fd, u32 out) {
    READY();
    if (fd != 3 || !fds[3].used || fds[3].node != 0) return E_BADF;
    put32(out, 0);
    put32(out + 4, 1);
    return 0;
}

SHIM(fd_prestat_dir_name) i32 fd_prestat_dir_name(i32 fd, u32 buf, u32 len) {
    READY();
    if (fd != 3 || !fds[3].used || fds[3].node != 0) return E_BADF;
    if (len < 1) return E_NAMETOOLONG;
    *(u8 *)buf = '/';
    return 0;
}

static i32 do_read(u32 fd, u32 iovs, u32 count, u64 *pos, u32 out) {
    struct fdesc *f = &fds[fd];
    if (!(f->rights & R_FD_READ)) return E_BADF;
    struct node *n = &nodes[f->node];
    if (n->kind == T_DIR) return E_ISDIR;
    u32 total = 0;
    u64 at = *pos;
    for (u32 i = 0; i < count; i++) {
        u32 buf = get32(iovs + 8 * i), len = get32(iovs + 8 * i + 4);
        if (at >= n->size) break;
        u32 take = n->size - at < len ? (u32)(n->size - at) : len;
        if (n->cap) copy((void *)buf, (void *)(n->data + (u32)at), take);
        else blob_read(buf, n->data + (u32)at, take);
        at += take;
        total += take;
    }
    *pos = at;
    put32(out, total);
    return 0;
}

static i32 do_write(u32 fd, u32 iovs, u32 count, u64 *pos, u32 out) {
    struct fdesc *f = &fds[fd];
    if (!(f->rights & R_FD_WRITE)) return E_BADF;
    if (nodes[f->node].kind == T_DIR) return E_ISDIR;
    u64 total = 0, at = *pos;
    for (u32 i = 0; i < count; i++) total += get32(iovs + 8 * i + 4);
    if (at + total > nodes[f->node].size) {
        i32 e = writable(f->node, at + total);
        if (e < 0) return -e;
    } else {
        i32 e = writable(f->node, nodes[f->node].size);
        if (e < 0) return -e;
    }
    struct node *n = &nodes[f->node];
    for (u32 i = 0; i < count; i++) {
        u32 buf = get32(iovs + 8 * i), len = get32(iovs + 8 * i + 4);
        copy((void *)(n->data + (u32)at), (void *)buf, len);
        at += len;
    }
    if (at > n->size) n->size = at;
    n->mtime = n->ctime = now();
    *pos = at;
    put32(out, (u32)total);
    return 0;
}

SHIM(fd_read) i32 fd_read(i32 fd, u32 iovs, u32 count, u32 out) {
    if (fd < 3) return real_fd_read(fd, iovs, count, out);
    CHECK_FD(fd);
    return do_read((u32)fd, iovs, count, &fds[fd].pos, out);
}

SHIM(fd_pread) i32 fd_pread(i32 fd, u32 iovs, u32 count, u64 offset, u32 out) {
    if (fd < 3) return real_fd_pread(fd, iovs, count, offset, out);
    CHECK_FD(fd);
    return do_read((u32)fd, iovs, count, &offset, out);
}

SHIM(fd_write) i32 fd_write(i32 fd, u32 iovs, u32 count, u32 out) {
    if (fd < 3) return real_fd_write(fd, iovs, count, out);
    CHECK_FD(fd);
    if (fds[fd].flags & FDF_APPEND) fds[fd].pos = nodes[fds[fd].node].size;
    return do_write((u32)fd, iovs, count, &fds[fd].pos, out);
}

SHIM(fd_pwrite) i32 fd_pwrite(i32 fd, u32 iovs, u32 count, u64 offset, u32 out) {
    if (fd < 3) return real_fd_pwrite(fd, iovs, count, offset, out);
    CHECK_FD(fd);
    return do_write((u32)fd, iovs, count, &offset, out);
}

SHIM(fd_seek) i32 fd_seek(i32 fd, i64 offset, u32 whence, u32 out) {
    if (fd < 3) return real_fd_seek(fd, offset, whence, out);
    CHECK_FD(fd);
    struct fdesc *f = &fds[fd];
    if (nodes[f->node].kind == T_DIR) return E_ISDIR;
    i64 base = whence == 0 ? 0 : whence == 1 ? (i64)f->pos : whence == 2 ? (i64)nodes[f->node].size : -1;
    if (base < 0 || whence > 2) return E_INVAL;
    if (base + offset < 0) return E_INVAL;
    f->pos = (u64)(base + offset);
    put64(out, f->pos);
    return 0;
}

SHIM(fd_tell) i32 fd_tell(i32 fd, u32 out) {
    if (fd < 3) return real_fd_tell(fd, out);
    CHECK_FD(fd);
    put64(out, fds[fd].pos);
    return 0;
}

SHIM(fd_close) i32 fd_close(i32 fd) {
    if (fd < 3) return real_fd_close(fd);
    CHECK_FD(fd);
    fds[fd].used = 0;
    return 0;
}

SHIM(fd_renumber) i32 fd_renumber(i32 from, i32 to) {
    READY();
    if (!VFD(from) || (u32)to >= MAX_FDS || to < 3) return E_BADF;
    fds[to] = fds[from];
    fds[from].used = 0;
    return 0;
}

SHIM(fd_sync) i32 fd_sync(i32 fd) {
    if (fd < 3) return real_fd_sync(fd);
    CHECK_FD(fd);
    return 0;
}

SHIM(fd_datasync) i32 fd_datasync(i32 fd) {
    if (fd < 3) return real_fd_datasync(fd);
    CHECK_FD(fd);
    return 0;
}

SHIM(fd_advise) i32 fd_advise(i32 fd, u64 offset, u64 len, u32 advice) {
    if (fd < 3) return real_fd_advise(fd, offset, len, advice);
    CHECK_FD(fd);
    return 0;
}

SHIM(fd_allocate) i32 fd_allocate(i32 fd, u64 offset, u64 len) {
    if (fd < 3) return real_fd_allocate(fd, offset, len);
    CHECK_FD(fd);
    if (!(fds[fd].rights & R_FD_WRITE)) return E_BADF;
    if (offset + len > nodes[fds[fd].node].size) return -resize(fds[fd].node, offset + len);
    return 0;
}

SHIM(fd_fdstat_get) i32 fd_fdstat_get(i32 fd, u32 out) {
    if (fd < 3) return real_fd_fdstat_get(fd, out);
    CHECK_FD(fd);
    zero((void *)out, 24);
    *(u8 *)out = (u8)nodes[fds[fd].node].kind;
    *(u16 *)(out + 2) = (u16)fds[fd].flags;
    put64(out + 8, fds[fd].rights);
    put64(out + 16, ALL_RIGHTS);
    return 0;
}

SHIM(fd_fdstat_set_flags) i32 fd_fdstat_set_flags(i32 fd, u32 flags) {
    if (fd < 3) return real_fd_fdstat_set_flags(fd, flags);
    CHECK_FD(fd);
    fds[fd].flags = flags & FDF_APPEND;
    return 0;
}

SHIM(fd_fdstat_set_rights) i32 fd_fdstat_set_rights(i32 fd, u64 base, u64 inheriting) {
    (void)inheriting;
    READY();
    if (fd < 3) return 0;
    if (!VFD(fd)) return E_BADF;
    if (base & ~fds[fd].rights) return E_NOTSUP;
    fds[fd].rights = base;
    return 0;
}

SHIM(fd_filestat_get) i32 fd_filestat_get(i32 fd, u32 out) {
    if (fd < 3) return real_fd_filestat_get(fd, out);
    CHECK_FD(fd);
    filestat(fds[fd].node, out);
    return 0;
}

SHIM(fd_filestat_set_size) i32 fd_filestat_set_size(i32 fd, u64 size) {
    if (fd < 3) return real_fd_filestat_set_size(fd, size);
    CHECK_FD(fd);
    if (!(fds[fd].rights & R_FD_WRITE)) return E_BADF;
    if (nodes[fds[fd].node].kind == T_DIR) return E_ISDIR;
    return -resize(fds[fd].node, size);
}

static i32 set_times(u32 id, u64 atim, u64 mtim, u32 flags) {
    struct node *n = &nodes[id];
    u64 t = (flags & 10) ? now() : 0;
    if (flags & 1) n->atime = atim;
    if (flags & 2) n->atime = t;
    if (flags & 4) n->mtime = mtim;
    if (flags & 8) n->mtime = t;
    return 0;
}

SHIM(fd_filestat_set_times) i32 fd_filestat_set_times(i32 fd, u64 atim, u64 mtim, u32 flags) {
    if (fd < 3) return real_fd_filestat_set_times(fd, atim, mtim, flags);
    CHECK_FD(fd);
    return set_times(fds[fd].node, atim, mtim, flags);
}

SHIM(fd_readdir) i32 fd_readdir(i32 fd, u32 buf, u32 len, u64 cookie, u32 out) {
    if (fd < 3) return E_NOTDIR;
    CHECK_FD(fd);
    u32 dir = fds[fd].node;
    if (nodes[dir].kind != T_DIR) return E_NOTDIR;
    u32 used = 0;
    for (u64 i = cookie; i < (u64)nodes[dir].nkids + 2 && used < len; i++) {
        u32 id, namelen;
        const u8 *name;
        u8 dots[2] = {'.', '.'};
        if (i < 2) { id = i ? nodes[dir].parent : dir; name = dots; namelen = (u32)i + 1; }
        else { id = get32(nodes[dir].kids + 4 * (u32)(i - 2)); name = (const u8 *)nodes[id].name; namelen = nodes[id].namelen; }
        u8 entry[24];
        zero(entry, 24);
        u64 next = i + 1, ino = id + 1;
        copy(entry, &next, 8);
        copy(entry + 8, &ino, 8);
        copy(entry + 16, &namelen, 4);
        entry[20] = (u8)nodes[id].kind;
        u32 take = len - used < 24 ? len - used : 24;
        copy((void *)(buf + used), entry, take);
        used += take;
        take = len - used < namelen ? len - used : namelen;
        copy((void *)(buf + used), name, take);
        used += take;
    }
    put32(out, used);
    return 0;
}

/* ---- paths ---- */

SHIM(path_open) i32 path_open(i32 fd, u32 dirflags, u32 path, u32 len, u32 oflags, u64 rights, u64 inheriting,
                              u32 fdflags, u32 out) {
    (void)inheriting;
    CHECK_FD(fd);
    const u8 *name;
    u32 namelen, must_dir;
    i32 dir = parent_of((u32)fd, path, len, &name, &namelen, &must_dir);
    if (dir < 0) return -dir;
    i32 id;
    if (!namelen) id = dir;
    else if (namelen == 2 && name[0] == '.' && name[1] == '.') id = (i32)nodes[dir].parent;
    else id = find_kid((u32)dir, name, namelen);
    if (id >= 0 && nodes[id].kind == T_LINK) {
        if (!(dirflags & 1)) return E_LOOP;
        id = lookup((u32)fd, path, len, 1);
        if (id < 0 && id != -E_NOENT) return -id;
        if (id == -E_NOENT && (oflags & O_CREAT)) return E_NOENT;   /* a dangling link: not followed to create */
    }
    if (id >= 0 && (oflags & O_CREAT) && (oflags & O_EXCL)) return E_EXIST;
    if (id < 0) {
        if (id != -E_NOENT) return -id;
        if (!(oflags & O_CREAT)) return E_NOENT;
        if (must_dir || (oflags & O_DIRECTORY)) return E_ISDIR;
        id = new_node(T_FILE, (u32)dir, name, namelen);
        if (id < 0) return -id;
        i32 e = attach((u32)dir, (u32)id);
        if (e < 0) return -e;
    }
    struct node *n = &nodes[id];
    if ((oflags & O_DIRECTORY || must_dir) && n->kind != T_DIR) return E_NOTDIR;
    if (n->kind == T_DIR && ((rights & R_FD_WRITE) || (oflags & O_TRUNC))) return E_ISDIR;
    if ((oflags & O_TRUNC) && n->kind == T_FILE) {
        i32 e = resize((u32)id, 0);
        if (e < 0) return -e;
    }
    i32 slot = new_fd();
    if (slot < 0) return -slot;
    fds[slot].used = 1;
    fds[slot].node = (u32)id;
    fds[slot].pos = 0;
    fds[slot].rights = rights & ALL_RIGHTS;
    fds[slot].flags = fdflags & FDF_APPEND;
    put32(out, (u32)slot);
    return 0;
}

SHIM(path_filestat_get) i32 path_filestat_get(i32 fd, u32 flags, u32 path, u32 len, u32 out) {
    CHECK_FD(fd);
    i32 id = lookup((u32)fd, path, len, flags & 1);
    if (id < 0) return -id;
    filestat((u32)id, out);
    return 0;
}

SHIM(path_filestat_set_times) i32 path_filestat_set_times(i32 fd, u32 flags, u32 path, u32 len, u64 atim, u64 mtim,
                                                          u32 fst) {
    CHECK_FD(fd);
    i32 id = lookup((u32)fd, path, len, flags & 1);
    if (id < 0) return -id;
    return set_times((u32)id, atim, mtim, fst);
}

/* The parent and name of a path to create or remove; `id` is the existing entry or -ENOENT. */
static i32 entry(i32 fd, u32 path, u32 len, u32 *dir, const u8 **name, u32 *namelen, i32 *id, u32 *must_dir) {
    if (!VFD(fd)) return E_BADF;
    i32 d = parent_of((u32)fd, path, len, name, namelen, must_dir);
    if (d < 0) return -d;
    *dir = (u32)d;
    if (!*namelen || (*namelen == 2 && (*name)[0] == '.' && (*name)[1] == '.')) return E_INVAL;
    *id = find_kid((u32)d, *name, *namelen);
    return 0;
}

SHIM(path_create_directory) i32 path_create_directory(i32 fd, u32 path, u32 len) {
    READY();
    u32 dir, namelen, must_dir;
    const u8 *name;
    i32 id, e = entry(fd, path, len, &dir, &name, &namelen, &id, &must_dir);
    if (e == E_INVAL) return E_EXIST;
    if (e) return e;
    if (id >= 0) return E_EXIST;
    id = new_node(T_DIR, dir, name, namelen);
    if (id < 0) return -id;
    nodes[dir].mtime = now();
    return -attach(dir, (u32)id);
}

SHIM(path_unlink_file) i32 path_unlink_file(i32 fd, u32 path, u32 len) {
    READY();
    u32 dir, namelen, must_dir;
    const u8 *name;
    i32 id, e = entry(fd, path, len, &dir, &name, &namelen, &id, &must_dir);
    if (e == E_INVAL) return E_ISDIR;
    if (e) return e;
    if (id < 0) return -id;
    if (nodes[id].kind == T_DIR) return E_ISDIR;
    if (must_dir) return E_NOTDIR;
    detach((u32)id);
    nodes[id].live = 0;
    return 0;
}

SHIM(path_remove_directory) i32 path_remove_directory(i32 fd, u32 path, u32 len) {
    READY();
    u32 dir, namelen, must_dir;
    const u8 *name;
    i32 id, e = entry(fd, path, len, &dir, &name, &namelen, &id, &must_dir);
    if (e == E_INVAL) return namelen ? E_NOTEMPTY : E_INVAL;
    if (e) return e;
    if (id < 0) return -id;
    if (nodes[id].kind != T_DIR) return E_NOTDIR;
    if (nodes[id].nkids) return E_NOTEMPTY;
    detach((u32)id);
    nodes[id].live = 0;
    return 0;
}

SHIM(path_symlink) i32 path_symlink(u32 target, u32 tlen, i32 fd, u32 path, u32 len) {
    READY();
    u32 dir, namelen, must_dir;
    const u8 *name;
    i32 id, e = entry(fd, path, len, &dir, &name, &namelen, &id, &must_dir);
    if (e == E_INVAL) return E_EXIST;
    if (e) return e;
    if (id >= 0) return E_EXIST;
    id = new_node(T_LINK, dir, name, namelen);
    if (id < 0) return -id;
    e = writable((u32)id, tlen);
    if (e < 0) return -e;
    copy((void *)nodes[id].data, (void *)target, tlen);
    nodes[id].size = tlen;
    return -attach(dir, (u32)id);
}

SHIM(path_readlink) i32 path_readlink(i32 fd, u32 path, u32 len, u32 buf, u32 buflen, u32 out) {
    CHECK_FD(fd);
    i32 id = lookup((u32)fd, path, len, 0);
    if (id < 0) return -id;
    struct node *n = &nodes[id];
    if (n->kind != T_LINK) return E_INVAL;
    u32 take = n->size < buflen ? (u32)n->size : buflen;
    if (n->cap) copy((void *)buf, (void *)n->data, take);
    else blob_read(buf, n->data, take);
    put32(out, take);
    return 0;
}

SHIM(path_link) i32 path_link(i32 fd, u32 flags, u32 path, u32 len, i32 fd2, u32 path2, u32 len2) {
    (void)fd; (void)flags; (void)path; (void)len; (void)fd2; (void)path2; (void)len2;
    return E_NOTSUP;   /* a node has one name here: hard links are not kept */
}

SHIM(path_rename) i32 path_rename(i32 fd, u32 path, u32 len, i32 fd2, u32 path2, u32 len2) {
    READY();
    u32 dir, namelen, dir2, namelen2, must_dir, must_dir2;
    const u8 *name, *name2;
    i32 id, id2, e = entry(fd, path, len, &dir, &name, &namelen, &id, &must_dir);
    if (e) return e;
    e = entry(fd2, path2, len2, &dir2, &name2, &namelen2, &id2, &must_dir2);
    if (e) return e;
    if (id < 0) return -id;
    if ((must_dir || must_dir2) && nodes[id].kind != T_DIR) return E_NOTDIR;
    for (u32 up = dir2;; up = nodes[up].parent) {   /* a directory cannot move into itself */
        if (up == (u32)id) return E_INVAL;
        if (!up) break;
    }
    if (id2 == id) return 0;
    if (id2 >= 0) {
        if (nodes[id].kind == T_DIR && nodes[id2].kind != T_DIR) return E_NOTDIR;
        if (nodes[id].kind != T_DIR && nodes[id2].kind == T_DIR) return E_ISDIR;
        if (nodes[id2].kind == T_DIR && nodes[id2].nkids) return E_NOTEMPTY;
        detach((u32)id2);
        nodes[id2].live = 0;
    }
    u32 copy_at = alloc(namelen2);
    if (!copy_at) return E_NOMEM;
    copy((void *)copy_at, name2, namelen2);
    detach((u32)id);
    nodes[id].name = copy_at;
    nodes[id].namelen = namelen2;
    nodes[id].ctime = now();
    return -attach(dir2, (u32)id);
}
