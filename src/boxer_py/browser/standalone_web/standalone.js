// The page `boxer web --standalone` writes: it runs ONE standalone module (`boxer export --format
// standalone`: the image's program merged with its files, docs/registry.md) in a Web Worker, with
// no image to fetch, no tar to parse and no file tree to build. The module answers its own file,
// argv and environment calls; this file gives it what any WASI runtime gives: stdin (the form's
// text), stdout and stderr (kept and shown), clocks, random bytes and exit. Nothing else: no
// preopened directory, no network. Hand-written, not built (toolchain/web builds the full page).
// The same file is the page's script and the worker's (`self.document` tells which it is).
"use strict";

const ENOSYS = 52, EBADF = 8, ESPIPE = 70, EINVAL = 28, MAX_OUTPUT = 1 << 20;

class Exit {
  constructor(code) { this.code = code; }
}

// WASI preview 1 for a standalone module: fds 0-2 only (the module keeps its own files).
function wasi(args, stdin, out) {
  let memory = null, stdinAt = 0;
  const view = () => new DataView(memory.buffer);
  const bytes = () => new Uint8Array(memory.buffer);
  const encoded = args.map((a) => new TextEncoder().encode(a + "\0"));
  const stdio = (fd) => fd >= 0 && fd <= 2;
  const calls = {
    args_sizes_get(count, size) {
      view().setUint32(count, encoded.length, true);
      view().setUint32(size, encoded.reduce((n, a) => n + a.length, 0), true);
      return 0;
    },
    args_get(argv, buf) {
      for (const a of encoded) {
        view().setUint32(argv, buf, true);
        bytes().set(a, buf);
        argv += 4;
        buf += a.length;
      }
      return 0;
    },
    environ_sizes_get(count, size) {   // the runtime passes no variables: the image's ENV is in the module
      view().setUint32(count, 0, true);
      view().setUint32(size, 0, true);
      return 0;
    },
    environ_get() { return 0; },
    fd_write(fd, iovs, count, written) {
      if (fd !== 1 && fd !== 2) return EBADF;
      let total = 0;
      for (let i = 0; i < count; i++) {
        const at = view().getUint32(iovs + 8 * i, true), len = view().getUint32(iovs + 8 * i + 4, true);
        const stream = out[fd === 1 ? "stdout" : "stderr"];
        const kept = Math.max(0, Math.min(len, MAX_OUTPUT - stream.size));   // the first MiB, the rest counted
        if (kept) stream.parts.push(bytes().slice(at, at + kept));
        stream.size += len;
        total += len;
      }
      view().setUint32(written, total, true);
      return 0;
    },
    fd_read(fd, iovs, count, read) {
      if (fd !== 0) return EBADF;
      let total = 0;
      for (let i = 0; i < count && stdinAt < stdin.length; i++) {
        const at = view().getUint32(iovs + 8 * i, true), len = view().getUint32(iovs + 8 * i + 4, true);
        const part = stdin.subarray(stdinAt, stdinAt + len);
        bytes().set(part, at);
        stdinAt += part.length;
        total += part.length;
      }
      view().setUint32(read, total, true);
      return 0;
    },
    fd_fdstat_get(fd, stat) {   // a pipe, not a terminal (filetype unknown), as when output is captured
      if (!stdio(fd)) return EBADF;
      bytes().fill(0, stat, stat + 24);
      view().setBigUint64(stat + 8, 0xffffffffffffffffn & ~0x24n, true);   // every right but seek and tell
      return 0;
    },
    fd_filestat_get(fd, stat) {
      if (!stdio(fd)) return EBADF;
      bytes().fill(0, stat, stat + 64);
      return 0;
    },
    fd_fdstat_set_flags(fd) { return stdio(fd) ? 0 : EBADF; },
    fd_seek(fd) { return stdio(fd) ? ESPIPE : EBADF; },
    fd_tell(fd) { return stdio(fd) ? ESPIPE : EBADF; },
    fd_close(fd) { return stdio(fd) ? 0 : EBADF; },
    fd_sync(fd) { return stdio(fd) ? EINVAL : EBADF; },
    fd_datasync(fd) { return stdio(fd) ? EINVAL : EBADF; },
    clock_res_get(id, res) {
      view().setBigUint64(res, 1000n, true);
      return 0;
    },
    clock_time_get(id, precision, time) {
      const ns = id === 0 ? BigInt(Date.now()) * 1000000n : BigInt(Math.round(performance.now() * 1e6));
      view().setBigUint64(time, ns, true);
      return 0;
    },
    random_get(buf, len) {
      for (let at = 0; at < len; at += 65536) {
        crypto.getRandomValues(bytes().subarray(buf + at, buf + Math.min(len, at + 65536)));
      }
      return 0;
    },
    poll_oneoff(subs, events, count, done) {   // every subscription ready at once (no sleeping in a tab)
      for (let i = 0; i < count; i++) {
        const event = events + 32 * i;
        bytes().fill(0, event, event + 32);
        view().setBigUint64(event, view().getBigUint64(subs + 48 * i, true), true);
        view().setUint8(event + 10, view().getUint8(subs + 48 * i + 8));
      }
      view().setUint32(done, count, true);
      return 0;
    },
    sched_yield() { return 0; },
    proc_exit(code) { throw new Exit(code); },
  };
  const imports = new Proxy(calls, { get: (target, name) => target[name] || (() => ENOSYS) });
  return { imports, bind: (m) => { memory = m; } };
}

async function runInWorker({ module, args, stdin }) {
  const out = { stdout: { parts: [], size: 0 }, stderr: { parts: [], size: 0 } };
  const system = wasi(args, stdin, out);
  let exitCode = 0, trap = null;
  try {
    const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: system.imports });
    system.bind(instance.exports.memory);
    instance.exports._start();
  } catch (e) {
    if (e instanceof Exit) exitCode = e.code;
    else { exitCode = 134; trap = String(e && e.message || e); }
  }
  const text = (s) => new TextDecoder().decode(concat(s.parts));
  return { exitCode, trap, stdout: text(out.stdout), stderr: text(out.stderr),
           stdoutBytes: out.stdout.size, stderrBytes: out.stderr.size };
}

function concat(parts) {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return all;
}

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return "sha256:" + Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Arguments typed as a command line: words split on spaces, '...' and "..." quoting, \ escapes.
function words(line) {
  const out = [];
  let word = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === " " || c === "\t" || c === "\n") { if (word !== null) out.push(word); word = null; }
    else if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated ${c} in the command`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === "\\" && i + 1 < line.length) { word = (word ?? "") + line[++i]; }
    else word = (word ?? "") + c;
  }
  if (word !== null) out.push(word);
  return out;
}

async function page() {
  const $ = (id) => document.getElementById(id);
  const state = { runs: [], module: null };
  window.boxer = state;
  const status = (text) => { $("status").textContent = text; };
  try {
    status("fetching the module\u2026");
    const response = await fetch(document.body.dataset.module);
    if (!response.ok) throw new Error(`${document.body.dataset.module}: cannot fetch (HTTP ${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (await sha256(bytes) !== document.body.dataset.moduleSha256) {
      throw new Error(`${document.body.dataset.module}: its bytes do not match its sha256 (tampered or corrupt)`);
    }
    status("compiling\u2026");
    state.module = await WebAssembly.compile(bytes);
  } catch (e) {
    $("error").textContent = String(e.message || e);
    $("error").hidden = false;
    status("error");
    return;
  }
  status("ready");
  $("run").disabled = false;
  $("run-form").addEventListener("submit", (event) => {
    event.preventDefault();
    let args;
    try { args = words($("command").value); } catch (e) { $("error").textContent = e.message; $("error").hidden = false; return; }
    const run = { command: $("command").value, exitCode: null, stdout: "", stderr: "", trap: null, done: false };
    state.runs.push(run);
    $("run").disabled = true;
    status("running\u2026");
    const worker = new Worker("standalone.js");
    worker.onmessage = ({ data }) => {
      Object.assign(run, data, { done: true });
      worker.terminate();
      const cut = (name) => run[name + "Bytes"] > MAX_OUTPUT ? `\n[${run[name + "Bytes"] - MAX_OUTPUT} more bytes not kept]` : "";
      $("stdout").textContent = run.stdout + cut("stdout");   // text, never markup
      $("stderr").textContent = run.stderr + cut("stderr");
      $("exit-code").textContent = String(run.exitCode);
      $("run").disabled = false;
      status(run.trap ? `crashed: ${run.trap}` : "done");
    };
    // argv[0] is the module's name; the words after it replace CMD, as after `wasmtime run OUT.wasm`
    worker.postMessage({ module: state.module, args: ["standalone.wasm", ...args],
                         stdin: new TextEncoder().encode($("stdin").value) });
  });
}

if (self.document) page();
else self.onmessage = async ({ data }) => self.postMessage(await runInWorker(data));
