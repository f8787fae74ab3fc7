// One run, in its own Web Worker: a private copy of the image's filesystem (structured-cloned
// into this worker, so nothing a run writes outlives it), the WASI preview1 imports of
// @bjorn3/browser_wasi_shim and nothing else, then `_start`. Output is posted as it comes.
//
// Limits, as `boxer run` applies them (the page passes them in):
// - stdout and stderr: `Capped` keeps the first part and the last part of each stream within
//   `maxOutput` bytes; what is in between is counted and dropped here, never posted.
// - the in-memory filesystem: every change of a file's size goes through `File.data`'s setter
//   and every new name through `Entries.set`, both charged to the run's `Quota` (bytes and
//   entries); growth past a limit throws `QuotaExceeded` before the bytes are allocated, and
//   keeps throwing on every later write (a module that catches JS exceptions gains nothing).

import { WASI, WASIProcExit, File, Directory, OpenDirectory, PreopenDirectory, OpenFile, ConsoleStdout } from "@bjorn3/browser_wasi_shim";
import { lookup, makeDirs } from "./tar.js";
import { setCwd } from "./wasicwd.js";
import { GUEST_DIR, WebNet, install } from "./net.js";
import { TerminalStdin } from "./ttyin.js";
import { stored } from "./loader.js";

const WASI_MODULE = "wasi_snapshot_preview1";
const ERRNO_NOTSUP = 58;
const TRAP_EXIT_CODE = 134;
const MAX_FILES_BYTES = 256 << 20; // /out files returned when no max-output is set (as launcher.py)
const TAIL_EVERY_MS = 250; // how often the kept tail of a truncated stream is posted while it runs

class QuotaExceeded extends Error {}

/** What this run's filesystem may grow by: bytes of file data and names created. Inactive
 *  until `arm()` (the image's own files are not charged). */
class Quota {
  constructor(disk, entries) {
    Object.assign(this, { disk, entries, bytes: 0, created: 0, armed: false, exceeded: null });
  }

  arm() { this.armed = true; }

  fail(message) {
    this.exceeded = this.exceeded || new QuotaExceeded(message);
    throw this.exceeded;
  }

  /** Check (without charging) that a file may grow from `from` to `to` bytes. */
  room(from, to) {
    if (!this.armed) return;
    if (this.exceeded) throw this.exceeded;
    if (to - from > 0 && this.bytes + (to - from) > this.disk) this.fail(`wrote more than the ${this.disk}-byte disk limit`);
  }

  /** Charge a size change of `delta` bytes (negative when a file shrinks). */
  charge(delta) {
    if (!this.armed) return;
    this.room(0, delta);
    this.bytes += delta;
  }

  entry() {
    if (!this.armed) return;
    if (this.exceeded) throw this.exceeded;
    if (this.created + 1 > this.entries) this.fail(`created more than ${this.entries} files and directories (the page's limit)`);
    this.created += 1;
  }
}

let quota = new Quota(Infinity, Infinity);

/** A directory's names: every new one is charged to the quota. */
class Entries extends Map {
  set(name, inode) {
    if (!this.has(name)) quota.entry();
    return super.set(name, inode);
  }
}

// The single places where the shim's filesystem grows: a File's `data` is replaced (write,
// pwrite, allocate, set_size, O_TRUNC all assign it), and a Directory's map gains a name.
Object.defineProperty(File.prototype, "data", {
  configurable: true,
  get() { return this._data; },
  set(bytes) {
    quota.charge(bytes.byteLength - (this._data ? this._data.byteLength : 0));
    this._data = bytes;
  },
});
Object.defineProperty(Directory.prototype, "contents", {
  configurable: true,
  get() { return this._entries; },
  set(map) {
    if (map instanceof Entries) { this._entries = map; return; }
    const entries = new Entries();
    for (const [name, inode] of map) Map.prototype.set.call(entries, name, inode);
    this._entries = entries;
  },
});
// ...and checked before the shim allocates the grown copy (an offset of 2^40 must not be tried).
for (const [name, end] of [
  ["fd_write", function (data) { return this.file_pos + BigInt(data.byteLength); }],
  ["fd_pwrite", function (data, offset) { return BigInt(offset) + BigInt(data.byteLength); }],
  ["fd_allocate", function (offset, len) { return BigInt(offset) + BigInt(len); }],
  ["fd_filestat_set_size", function (size) { return BigInt(size); }],
]) {
  const original = OpenFile.prototype[name];
  OpenFile.prototype[name] = function (...args) {
    quota.room(this.file.data.byteLength, Number(end.apply(this, args)));
    // An image file the page shares with every run (main.js shareFiles) is copied before its first
    // write: only fd_write and fd_pwrite write into a file's bytes in place, the others replace them.
    if (isShared(this.file.data)) this.file.data = this.file.data.slice();
    return original.apply(this, args);
  };
}

// The shim shrinks a file by slicing its data's whole buffer; a file's bytes may be a view into a
// layer (materialize), so a shrink keeps the start of the file itself.
const setSize = OpenFile.prototype.fd_filestat_set_size;
OpenFile.prototype.fd_filestat_set_size = function (size) {
  if (BigInt(this.file.data.byteLength) <= BigInt(size)) return setSize.call(this, size);
  this.file.data = this.file.data.slice(0, Number(size));
  return 0;
};

// A directory reports every right, as Wasmtime's do under `boxer run` (the shim reports none):
// wasi-libc's access() asks a directory's inheriting rights whether what is under it may be read
// or written, so os.access(path, os.W_OK) said no for every path (matplotlib then warns on stderr
// that its config directory is not writable). The shim itself never checks rights.
const ALL_RIGHTS = (1n << 29n) - 1n;
const directoryStat = OpenDirectory.prototype.fd_fdstat_get;
OpenDirectory.prototype.fd_fdstat_get = function () {
  const out = directoryStat.call(this);
  if (out.fdstat) out.fdstat.fs_rights_base = out.fdstat.fs_rights_inherited = ALL_RIGHTS;
  return out;
};

/** One output stream: the first `cap - cap/4` bytes are posted as they come, the last `cap/4`
 *  are kept in a ring and posted (as "tail") every TAIL_EVERY_MS and at the end. */
class Capped {
  constructor(type, cap) {
    this.type = type;
    this.tailCap = Math.floor(cap / 4);
    this.headCap = cap - this.tailCap;
    this.ring = null; // allocated when the head is full
    Object.assign(this, { total: 0, kept: 0, pos: 0, posted: 0 });
  }

  write(data) {
    const start = this.total;
    this.total += data.byteLength;
    if (start < this.headCap) {
      const head = data.slice(0, Math.min(data.byteLength, this.headCap - start));
      postMessage({ type: this.type, data: head }, [head.buffer]);
      data = data.subarray(head.byteLength);
    }
    if (!data.byteLength || !this.tailCap) return;
    this.ring = this.ring || new Uint8Array(this.tailCap);
    if (data.byteLength >= this.tailCap) {
      this.ring.set(data.subarray(data.byteLength - this.tailCap));
      this.pos = 0;
      this.kept = this.tailCap;
    } else {
      const first = Math.min(data.byteLength, this.tailCap - this.pos);
      this.ring.set(data.subarray(0, first), this.pos);
      this.ring.set(data.subarray(first), 0);
      this.pos = (this.pos + data.byteLength) % this.tailCap;
      this.kept = Math.min(this.tailCap, this.kept + data.byteLength);
    }
    if (performance.now() - this.posted > TAIL_EVERY_MS) this.flush();
  }

  /** Post the kept tail (a copy, in order) and the total so far. */
  flush() {
    this.posted = performance.now();
    if (this.total <= this.headCap || !this.ring) return;
    const tail = new Uint8Array(this.kept);
    const start = (this.pos - this.kept + this.tailCap) % this.tailCap;
    const first = Math.min(this.kept, this.tailCap - start);
    tail.set(this.ring.subarray(start, start + first));
    tail.set(this.ring.subarray(0, this.kept - first), first);
    postMessage({ type: "tail", stream: this.type, data: tail, total: this.total, truncated: this.total > this.headCap + this.tailCap },
      [tail.buffer]);
  }
}

const EMPTY = new Uint8Array(0);

function isShared(bytes) {
  return typeof SharedArrayBuffer === "function" && bytes.buffer instanceof SharedArrayBuffer;
}

/** The tree as shim inodes (files keep their bytes where the clone put them); a symlink becomes
 *  another name for what it resolves to inside the root, and is dropped if that is missing. */
function materialize(root) {
  const memo = new Map();
  const links = [];
  const used = new Set(); // file bytes already given to a File: a second name for them gets a copy
  const build = (node, path) => {
    if (memo.has(node)) return memo.get(node);
    let inode;
    if (node.type === "file") {
      // The tree is this worker's own structured-clone copy: a file's bytes need no copy of their own.
      inode = new File(EMPTY);
      inode.data = used.has(node.data) ? node.data.slice() : node.data;
      used.add(node.data);
    } else {
      const contents = new Entries();
      for (const [name, child] of node.entries) {
        if (child.type === "symlink") links.push([contents, path + "/" + name]);
        else contents.set(name, build(child, path + "/" + name));
      }
      inode = node === root ? contents : new Directory(contents);
    }
    memo.set(node, inode);
    return inode;
  };
  const preopen = new PreopenDirectory("/", build(root, ""));
  memo.set(root, preopen.dir);
  for (const [contents, path] of links) {
    let target = null;
    try {
      target = lookup(root, path).node;
    } catch {
      // a symlink loop: leave the name out, as a dangling link reads as missing
    }
    if (target && target.type !== "symlink") contents.set(path.slice(path.lastIndexOf("/") + 1), build(target, path));
  }
  return preopen;
}

/** The files under `dir`, at most `budget` bytes in all (larger ones are left out and flagged),
 *  iteratively (a guest can nest directories deeply). Hard links are listed once per name. */
function collect(dir, path, budget) {
  const files = [];
  let truncated = false;
  const todo = [[dir, path]];
  while (todo.length) {
    const [d, p] = todo.pop();
    for (const [name, inode] of d.contents) {
      if (inode instanceof Directory) todo.push([inode, p + "/" + name]);
      else if (!(inode instanceof File)) continue;
      else if (inode.data.byteLength > budget) truncated = true;
      else {
        budget -= inode.data.byteLength;
        files.push({ path: p + "/" + name, data: inode.data.slice() });
      }
    }
  }
  return { files, truncated };
}

/** `_start`, through JSPI when the run has a network (its socket calls may wait). */
async function start(wasi, instance, suspends) {
  if (!suspends) return wasi.start(instance);
  wasi.inst = instance;
  try {
    await WebAssembly.promising(instance.exports._start)();
    return 0;
  } catch (e) {
    if (e instanceof WASIProcExit) return e.code;
    throw e;
  }
}

/** The snapshot's call, which ends with the program's exit (guest.py's resume never returns). */
function resumeCall(wasi, instance, call) {
  wasi.inst = instance;
  try {
    call();
  } catch (e) {
    if (e instanceof WASIProcExit) return e.code;
    throw e;
  }
  throw new Error("the pre-initialised interpreter returned instead of exiting");
}

let activeNet = null; // the run's network, which requests relayed from the page's Service Worker reach

/** The run's network (net.js) when the page has an allow-list: its descriptors after "/" and
 *  the guest's PYTHONPATH and BOXER_NET_FD, as net/wasi.py's reserve() sets them. */
function network(net, env, stderr) {
  if (!net) return null;
  const webnet = new WebNet(net.allow, net.publish || [], 6, (text) => stderr.write(new TextEncoder().encode(text)));
  activeNet = webnet;
  const old = env.find((e) => e.startsWith("PYTHONPATH="));
  const rest = env.filter((e) => !e.startsWith("PYTHONPATH=") && !e.startsWith("BOXER_NET_FD="));
  env.length = 0;
  env.push(...rest, `PYTHONPATH=${GUEST_DIR}${old ? ":" + old.slice("PYTHONPATH=".length) : ""}`, `BOXER_NET_FD=${webnet.first}`);
  return webnet;
}

/** The preopens after "/" that the snapshot's boot had (the image's read-only directories), as
 *  second names of the same directories of the tree, so the restored descriptor table holds. */
function bootPreopens(preopen, paths) {
  return paths.slice(1).map((path) => {
    let dir = preopen.dir;
    for (const part of path.split("/").filter(Boolean)) dir = dir instanceof Directory ? dir.contents.get(part) : null;
    if (!(dir instanceof Directory)) throw new Error(`the snapshot's preopen ${path} is not a directory of the image`);
    return new PreopenDirectory(path, dir.contents);
  });
}

/** Make a fresh instance the snapshot (preinit.restore): its memory pages and stack pointer
 *  back, the run's request in its inbox; the call then runs the program (resume in guest.py). */
function restore(instance, { head, data, message }) {
  const { memory } = instance.exports;
  const missing = head.memory_size - memory.buffer.byteLength;
  if (missing > 0) memory.grow(Math.ceil(missing / 65536));
  const bytes = new Uint8Array(memory.buffer);
  let source = 0;
  for (const [address, length] of head.pages) {
    bytes.set(data.subarray(source, source + length), address);
    source += length;
  }
  instance.exports["boxer:stack_pointer"].value = head.stack_pointer;
  if (message.length > head.inbox_size) throw new Error("the request does not fit the snapshot's inbox");
  bytes.set(message, head.inbox);
  return () => instance.exports["boxer:call"](head.callable, head.args, 2, head.function);
}

/** /.boxer/tty/size (runtime/winsize.py's file, "COLUMNS LINES"): the page's terminal size,
 *  read from the page's buffer each time the file is opened, so a resize shows at the next
 *  open. Read-only; not charged to the run's quota. */
class SizeFile extends File {
  constructor(window) {
    super(EMPTY, { readonly: true });
    this.window = window;
  }

  path_open(...args) {
    this._data = new TextEncoder().encode(`${Atomics.load(this.window, 0)} ${Atomics.load(this.window, 1)}\n`);
    return super.path_open(...args);
  }
}

/** The size file in the run's tree, when the image leaves room for it. */
function addSizeFile(preopen, winsize) {
  let dir = preopen.dir;
  for (const name of [".boxer", "tty"]) dir = dir instanceof Directory ? dir.contents.get(name) : null;
  if (dir instanceof Directory) dir.contents.set("size", new SizeFile(winsize));
}

/** Now on the shared clock (ms since the epoch): the page subtracts its own timeOrigin. */
const now = () => performance.timeOrigin + performance.now();

async function run({ module, root, argv, env, workdir, cwdSlot, stdin, tty, winsize, outDir, limits, net, resume }) {
  const at = { received: now() };
  quota = new Quota(limits.disk, limits.entries);
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module !== WASI_MODULE) {
      throw Object.assign(new Error(`${argv[0]}: imports ${imp.module}.${imp.name}, which is not WASI preview1: only WASI programs run here`), { exitCode: 126 });
    }
  }
  if (!makeDirs(root, workdir)) throw new Error(`the working directory ${workdir} is not a directory`);
  if (outDir) makeDirs(root, outDir);
  const sized = winsize && makeDirs(root, "/.boxer/tty");
  const preopen = materialize(root);
  if (sized) addSizeFile(preopen, winsize);
  const streams = [new Capped("stdout", limits.maxOutput), new Capped("stderr", limits.maxOutput)];
  const [stdout, stderr] = streams.map((stream) => new ConsoleStdout((data) => stream.write(data)));
  const webnet = network(net, env, streams[1]);
  // stdin: the terminal when the page passed its channel (typing reaches the guest), else the form's bytes.
  const input = tty ? new TerminalStdin(tty, () => postMessage({ type: "stdin-taken" })) : new OpenFile(new File(stdin));
  const fds = [input, stdout, stderr, preopen, ...(resume ? bootPreopens(preopen, resume.preopens) : []),
    ...(webnet ? webnet.descriptors(net.modules) : [])];
  const wasi = new WASI(argv, env, fds, { debug: false });
  quota.arm();
  for (const name of ["sock_accept", "sock_recv", "sock_send", "sock_shutdown"]) wasi.wasiImport[name] = () => ERRNO_NOTSUP;
  let instance = null;
  if (webnet) install(wasi, webnet, () => instance.exports.memory);
  const missing = WebAssembly.Module.imports(module).find((imp) => !(imp.name in wasi.wasiImport));
  if (missing) throw Object.assign(new Error(`${argv[0]}: needs WASI function ${missing.name}, which this launcher does not provide`), { exitCode: 126 });
  // The shim fills a shared memory (the page's Ctrl-C, below) from Math.random: the guest's
  // randomness comes from the browser's CSPRNG, through a buffer of its own.
  wasi.wasiImport.random_get = (buf, len) => {
    const bytes = new Uint8Array(len);
    for (let i = 0; i < len; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    new Uint8Array(instance.exports.memory.buffer).set(bytes, buf);
    return 0;
  };
  instance = new WebAssembly.Instance(module, { [WASI_MODULE]: wasi.wasiImport });
  at.instantiated = now();
  const { memory, _start } = instance.exports;
  if (typeof _start !== "function" || !(memory instanceof WebAssembly.Memory)) {
    throw Object.assign(new Error(`${argv[0]}: not a WASI command (no _start)`), { exitCode: 126 });
  }
  // A shared memory: the page sets CPython's Ctrl-C words in it while the guest runs.
  if (typeof SharedArrayBuffer === "function" && memory.buffer instanceof SharedArrayBuffer) postMessage({ type: "memory", memory });
  const resumed = resume ? restore(instance, resume) : null; // the guest changes to its workdir itself
  if (!resumed && workdir !== "/" && cwdSlot !== null) setCwd(memory, cwdSlot, workdir);
  at.started = now();
  postMessage({ type: "started", resumed: !!resumed, at });
  const started = performance.now();
  let exitCode = 0;
  let trap = null;
  try {
    exitCode = resumed ? resumeCall(wasi, instance, resumed) : await start(wasi, instance, !!webnet);
  } catch (e) {
    exitCode = TRAP_EXIT_CODE;
    trap = e instanceof Error ? e.message : String(e);
  }
  if (quota.exceeded) { // also when the module caught the exception and went on to exit
    exitCode = TRAP_EXIT_CODE;
    trap = quota.exceeded.message;
  }
  for (const stream of streams) stream.flush();
  if (exitCode > 125 && trap === null) {
    trap = `exit with invalid exit status outside of [0..126): ${exitCode}`;
    exitCode = TRAP_EXIT_CODE;
  }
  const durationMs = performance.now() - started;
  let dir = outDir ? preopen.dir : null;
  for (const part of (outDir || "").split("/").filter(Boolean)) dir = dir instanceof Directory ? dir.contents.get(part) : null;
  const budget = Math.min(limits.filesBudget, limits.disk, MAX_FILES_BYTES);
  const { files, truncated } = dir instanceof Directory ? collect(dir, outDir, budget) : { files: [], truncated: false };
  postMessage({ type: "done", exitCode, durationMs, trap, files, filesTruncated: truncated, diskFull: !!quota.exceeded },
    files.map((f) => f.data.buffer));
}

self.onmessage = (event) => {
  if (event.data && event.data.type === "inbound") {
    const [reply] = event.ports;
    if (activeNet) activeNet.inbound(event.data, reply);
    else reply.postMessage({ status: 503, error: "the running program has no network" });
    return;
  }
  if (event.data && event.data.type === "stored") { // the page's stored files, before any run (loader.js)
    const { id } = event.data;
    stored(event.data).catch(() => [null, []]).then(([value, transfer]) => postMessage({ type: "stored", id, value }, transfer));
    return;
  }
  run(event.data).catch((e) => postMessage({ type: "error", message: e.message || String(e), exitCode: e.exitCode ?? 125 }));
};
