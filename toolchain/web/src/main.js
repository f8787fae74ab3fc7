// The page: fetch image.wasm, verify it, unpack its filesystem in memory, and run commands
// from the form, each in a fresh Web Worker (worker.js), showing output in an xterm terminal,
// the exit code, the duration and the files left under /out.

import { decodeImage, ImageError, unshared } from "./image.js";
import { buildRootfs } from "./tar.js";
import { plan, findProgram, withInterpreter, shellWords, cpythonStart, RunError } from "./command.js";
import { findCwdSlot } from "./wasicwd.js";
import { inertFrame, scriptFrame } from "./preview.js";
import { loadNetwork, relayTo } from "./netpage.js";
import { LineConsole } from "./console.js";
import { makeChannel } from "./ttyin.js";
import { Runtime, resumes, request, withPrelude } from "./runtime.js";
import { Loader, Store } from "./store.js";

const OUT_DIR = "/out";
const TIMEOUT_EXIT_CODE = 124;
const STOPPED_EXIT_CODE = 137;
const INTERRUPT_EXIT_CODE = 130; // as `boxer run` (and a shell) after Ctrl-C
const WINSIZE_VARIABLE = "BOXER_TTY"; // boxer's sitecustomize reads the terminal's size from the file it names
const WINSIZE_FILE = "/.boxer/tty/size";
const IMAGE_TYPES = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp", svg: "image/svg+xml" };
// The page's limits when `boxer web`/`boxer serve` set none (data-max-output, data-disk, data-max-entries).
const DEFAULT_MAX_OUTPUT = 1 << 20;
const DEFAULT_DISK = 256 << 20;
const DEFAULT_MAX_ENTRIES = 10000;

const $ = (id) => document.getElementById(id);

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function showError(message) {
  const el = $("error");
  el.textContent = visible(message);
  el.hidden = false;
  setStatus("error", "error");
}

function quote(argv) {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'")).join(" ");
}

function size(n) {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

// Control and format characters (bidi overrides and isolates, zero-width marks, line
// separators) in a guest-chosen name: shown as [U+XXXX], never applied; left out of download names.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

function visible(text) {
  return String(text).replace(INVISIBLE, (c) => `[U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}]`);
}

function downloadName(name) {
  return String(name).replace(INVISIBLE, "").replace(/[\/\\]/g, "_").trim() || "download";
}

/** A guest-chosen string as an isolated, visible text node (<bdi>: it cannot reorder what is around it). */
function guestText(text) {
  const bdi = document.createElement("bdi");
  bdi.textContent = visible(text);
  return bdi;
}

function limitsOf(data) {
  const number = (value, fallback) => (value !== undefined && /^\d+$/.test(value) ? Number(value) : fallback);
  const explicit = number(data.maxOutput, null);
  return {
    maxOutput: explicit ?? DEFAULT_MAX_OUTPUT, // bytes kept of stdout and of stderr each (head and tail)
    filesBudget: explicit ?? Infinity, // and of /out files in all, when set (as `boxer run --max-output`)
    disk: number(data.disk, DEFAULT_DISK), // bytes the in-memory filesystem may grow by
    entries: number(data.maxEntries, DEFAULT_MAX_ENTRIES), // files and directories a run may create
  };
}

class App {
  constructor(limits, previewUrl, runtime, store) {
    this.limits = limits;
    this.store = store; // the site's big files between visits (store.js)
    this.runtime = runtime; // the site's precompiled default program (runtime.js)
    this.previewUrl = previewUrl;
    this.image = null;
    this.root = null;
    this.modules = new Map(); // program node -> Promise<{module, cwdSlot}>
    this.current = null; // the run in progress (claimed synchronously when a run is asked for)
    this.workers = new Set(); // every worker started and not yet terminated
    this.workersStarted = 0;
    // The next run's worker, started before it is asked for (its script loads and its thread
    // starts while the image loads); it runs nothing until a run hands it its command.
    this.spare = null;
    this.readyAt = null; // performance.now() when the image was verified and unpacked
    this.sharedFiles = false; // whether the tree's files are shared with the runs (shareFiles)
    // Settled when the first run has shown its first output, has ended, or has run for a second.
    this.firstShown = new Promise((resolve) => { this.shown = resolve; });
    this.stop = null;
    this.ctrlC = () => false; // Ctrl-C typed into the terminal (set per run)
    this.signalGap = 0;
    this.resized = () => {}; // the terminal's new size, for the run (set per run)
    this.runs = [];
    this.urls = []; // object URLs of the last run's files, revoked when the next run starts
    this.terminal = this.console = null; // xterm (openTerminal), and the run reading it, if any (LineConsole)
  }

  /** The terminal: xterm, from its own module (terminal.js, nine tenths of the page's script, parsed
   *  while the image is read), filling its box (its size follows the window, a phone, a dragged corner). */
  openTerminal({ Terminal, FitAddon }) {
    this.terminal = new Terminal({
      convertEol: true, fontSize: 13, scrollback: 5000, disableStdin: true,
      // OSC 8 hyperlinks come from the guest: their text can say anything. Never open one;
      // show where it really points. (No link provider is added: plain text is never a link.)
      linkHandler: {
        activate: (event, uri) => this.showLink(uri, true),
        hover: (event, uri) => this.showLink(uri, false),
        allowNonHttpProtocols: true,
      },
    });
    this.fit = new FitAddon();
    this.terminal.loadAddon(this.fit);
    this.terminal.open($("terminal"));
    this.terminal.onData((data) => this.console && this.console.input(data));
    this.terminal.onResize((size) => this.resized(size));
    this.fit.fit();
    new ResizeObserver(() => this.fit.fit()).observe($("terminal"));
  }

  showLink(uri, clicked) {
    const note = $("link-note");
    note.replaceChildren(clicked ? "not opened: a link written by the program points to " : "link target: ", guestText(uri));
    note.hidden = false;
    note.dataset.clicked = String(clicked);
  }

  /** The image `url`, whose id the page says is `id`: `stored`, the store's copy if one checked
   *  out (decodeImage verified every blob, and its manifest has that digest: store.js's Loader),
   *  else fetched and verified, then stored if its id is the one the page names. */
  async load(url, id, stored) {
    performance.mark("boxer:load");
    this.image = id ? await stored : null;
    performance.mark("boxer:read");
    if (!this.image) {
      setStatus("loading", `fetching ${url}…`);
      let data;
      try {
        const response = await fetch(url);
        if (!response.ok) throw new ImageError(`${url}: cannot fetch (HTTP ${response.status})`);
        data = new Uint8Array(await response.arrayBuffer());
      } catch (e) {
        throw e instanceof ImageError ? e : new ImageError(`${url}: cannot fetch (${e.message})`);
      }
      performance.mark("boxer:fetched");
      setStatus("loading", `verifying ${size(data.length)}…`);
      this.image = await decodeImage(data, url.split("/").pop());
      if (id && this.image.id === id) this.store.put(id, data); // not awaited: the page goes on
    }
    this.store.keep([id, ...this.runtime.digests]);
    performance.mark("boxer:verified");
    this.root = buildRootfs(this.image.layers);
    this.shareFiles();
    performance.mark("boxer:unpacked");
    this.readyAt = performance.now();
    this.net = await loadNetwork(document.body.dataset);
    relayTo(() => [...this.workers]);
    const c = this.image.config;
    $("image-id").textContent = this.image.id.slice(0, 19);
    $("image-tag").textContent = visible(this.image.tag || "(untagged)");
    $("command").placeholder = visible(quote(c.cmd)) || "command";
    $("entrypoint").placeholder = visible(quote(c.entrypoint)) || "none";
    $("workdir").textContent = visible(c.workingDir);
    setStatus("ready", "ready");
  }

  /** On a cross-origin isolated page, the image's bytes are copied once into a SharedArrayBuffer
   *  and the tree's files (and the verified layers) are views of that copy: each run's message
   *  then carries the tree without copying its files, and a run's worker copies a file before
   *  its first write to it (worker.js), so no run changes what the next one sees. */
  shareFiles() {
    const layers = this.image.layers;
    const buffer = layers.length ? layers[0].data.buffer : null;
    if (self.crossOriginIsolated !== true || typeof SharedArrayBuffer !== "function" || !buffer
        || !layers.every((l) => l.data.buffer === buffer)) return;
    const shared = new Uint8Array(buffer instanceof SharedArrayBuffer ? buffer : new SharedArrayBuffer(buffer.byteLength));
    if (shared.buffer !== buffer) shared.set(new Uint8Array(buffer)); // a stored image comes shared
    const views = new Map(); // one view per original array, so second names stay second names
    const view = (data) => {
      if (!views.has(data)) views.set(data, new Uint8Array(shared.buffer, data.byteOffset, data.byteLength));
      return views.get(data);
    };
    const todo = [this.root];
    while (todo.length) {
      for (const node of todo.pop().entries.values()) {
        if (node.type === "dir") todo.push(node);
        else if (node.type === "file" && node.data.buffer === buffer) node.data = view(node.data);
      }
    }
    this.image = { ...this.image, layers: layers.map((l) => ({ ...l, data: view(l.data) })) };
    this.sharedFiles = true;
  }

  compiled(program) {
    if (!this.modules.has(program.node)) {
      const bytes = program.node.data;
      this.modules.set(program.node, this.runtime.moduleFor(bytes, this.image.layers).then((found) => found
        || WebAssembly.compile(unshared(bytes)).then((module) => ({ module, cwdSlot: findCwdSlot(bytes) }))));
    }
    return this.modules.get(program.node);
  }

  /** A worker for the next run, started now so that it is ready when a run needs it. */
  prepareWorker() {
    if (!this.spare) this.spare = new Worker(new URL("worker.js", document.baseURI));
  }

  /** The prepared worker (nothing has run in it), or a new one. */
  takeWorker() {
    const worker = this.spare || new Worker(new URL("worker.js", document.baseURI));
    this.spare = null;
    return worker;
  }

  /** End every worker there is (only the current run's should exist). */
  terminateAll() {
    for (const worker of this.workers) worker.terminate();
    this.workers.clear();
  }

  /** Run the command `line` (words; empty: the image's CMD) with `entrypoint` (words; empty:
   *  the image's ENTRYPOINT; as `docker run --entrypoint`, it also drops the image's CMD). */
  async run(line, stdin, timeout, entrypoint = "") {
    if (this.current) return null; // one run at a time: claimed here, before any await
    const record = {
      command: line, stdout: "", stderr: "", exitCode: null, durationMs: null, trap: null, files: [], done: false, firstOutputMs: null,
      stdoutTruncated: false, stderrTruncated: false, stdoutBytes: 0, stderrBytes: 0, filesTruncated: false, diskFull: false,
      // With no stdin in the form, typing into the terminal is the guest's stdin (a TTY), if the
      // page may share memory with its worker (cross-origin isolated: COOP + COEP headers).
      interactive: stdin.length === 0 && self.crossOriginIsolated === true, preinitialised: false, interrupts: 0, runtime: null,
      // Where the time to first output went, in ms since navigation (performance.now()): the page's
      // steps here, the worker's from its clock (worker.js posts performance.timeOrigin-based times).
      timings: { requested: performance.now(), imageReady: this.readyAt, compiled: null, posted: null, received: null, instantiated: null, started: null, firstOutput: null },
    };
    this.current = record;
    this.runs.push(record);
    this.freeFiles();
    this.clearResult();
    $("error").hidden = true;
    $("link-note").hidden = true;
    $("run").disabled = $("run-code").disabled = true;
    $("stop").disabled = false;
    const t0 = performance.now();
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    const tails = { stdout: null, stderr: null }; // the last posted tail of each stream
    let worker = null;
    let timer = null;
    let resolve;
    const finished = new Promise((r) => { resolve = r; });
    const end = (exitCode, note, result = {}) => {
      if (record.done) return;
      if (worker) {
        worker.terminate();
        this.workers.delete(worker);
      }
      this.terminateAll();
      this.prepareWorker(); // for the next run
      clearTimeout(timer);
      record.stdout += decoders.stdout.decode();
      record.stderr += decoders.stderr.decode();
      for (const stream of ["stdout", "stderr"]) this.endStream(record, stream, tails[stream]);
      if (this.console) this.console.close();
      this.console = null;
      this.terminal.options.disableStdin = true;
      Object.assign(record, {
        exitCode, trap: note, durationMs: result.durationMs ?? performance.now() - t0, files: result.files || [], done: true,
        filesTruncated: !!result.filesTruncated, diskFull: !!result.diskFull,
      });
      this.current = null;
      this.stop = null;
      this.shown();
      this.finish(record);
      resolve(record);
    };
    this.stop = () => end(STOPPED_EXIT_CODE, "stopped");
    let guestMemory = null; // the guest's memory, when shared with the page (worker.js)
    let flags = null; // CPython's Ctrl-C words in it (data-interrupt-flags)
    // Ctrl-C in the terminal: as `boxer run` does, set the words CPython's SIGINT handler sets
    // (it raises KeyboardInterrupt at its next check, busy or reading a line). True if the guest
    // got it; a guest that cannot be interrupted so only loses the line being typed (Stop ends it).
    // Each word gets its bits OR-ed in: 3.13's eval breaker holds other flags and a version too.
    // In the order given (CPython's: the eval breaker last; interrupt.py), as the guest runs on:
    // `signalGap` (ms, 0) is a test's slow page, between words.
    this.ctrlC = () => {
      if (record.done || !guestMemory || !flags) return false;
      const words = new Int32Array(guestMemory.buffer);
      for (const [address, bits] of flags) {
        Atomics.or(words, address >> 2, bits);
        for (const until = performance.now() + this.signalGap; performance.now() < until;);
      }
      record.interrupts += 1;
      return true;
    };
    // The terminal's size, as `boxer run -it` gives it (runtime/winsize.py), to a run whose
    // stdin is the terminal: the guest's /.boxer/tty/size reads this buffer (worker.js), which a
    // resize rewrites; a guest's SIGWINCH handler then runs, delivered as Ctrl-C is (data-winch:
    // only when it has a handler of its own).
    const winsize = record.interactive ? new Int32Array(new SharedArrayBuffer(8)) : null;
    if (winsize) winsize.set([this.terminal.cols, this.terminal.rows]);
    let winch = null;
    this.resized = ({ cols, rows }) => {
      if (record.done || !winsize) return;
      Atomics.store(winsize, 0, cols);
      Atomics.store(winsize, 1, rows);
      if (!guestMemory || !winch) return;
      const words = new Int32Array(guestMemory.buffer);
      if (winch.unhandled.includes(Atomics.load(words, winch.handler >> 2) >>> 0)) return;
      for (const [address, bits] of winch.flags) Atomics.or(words, address >> 2, bits);
    };
    let argv, env, path, workdir, program;
    try {
      const config = entrypoint.trim() ? { ...this.image.config, entrypoint: shellWords(entrypoint), cmd: [] } : this.image.config;
      ({ argv, env, path, workdir } = plan(config, shellWords(line)));
      argv = withInterpreter(this.root, argv, path, workdir);
      program = findProgram(this.root, argv[0], path, workdir);
      ({ argv, env } = cpythonStart(argv, env, program.guest));
      if (record.interactive) env = [...env.filter((e) => !e.startsWith(`${WINSIZE_VARIABLE}=`)), `${WINSIZE_VARIABLE}=${WINSIZE_FILE}`];
    } catch (e) {
      if (!(e instanceof RunError)) { end(125, `the launcher failed: ${e.message}`); throw e; }
      end(e.exitCode, e.message, { durationMs: 0 });
      showError(e.message);
      return record;
    }
    this.terminal.write(`\x1b[2m$ ${visible(quote(argv))}\x1b[0m\n`);
    setStatus("compiling", `compiling ${visible(program.guest)} (${size(program.node.data.length)})…`);
    let compiled;
    try {
      compiled = await this.compiled(program);
    } catch (e) {
      end(125, `cannot compile ${program.guest}: ${e.message}`);
      showError(record.trap);
      return record;
    }
    if (record.done) return record; // stopped while compiling
    performance.mark("boxer:compiled");
    record.timings.compiled = performance.now();
    // How the site's runtime was found to be this program: "layer" (where boxer web found it, in a
    // layer the page checked), "sha256" (its bytes hashed), or null (compiled from the image).
    record.runtime = compiled.known || null;
    flags = compiled.interruptFlags || null;
    winch = compiled.winch || null;
    setStatus("running", "running…");
    this.terminateAll();
    worker = this.takeWorker();
    this.workers.add(worker);
    this.workersStarted += 1;
    worker.onmessage = ({ data: msg }) => {
      if (record.done) return;
      if (msg.type === "started") {
        performance.mark("boxer:started");
        for (const [step, at] of Object.entries(msg.at || {})) {
          if (step in record.timings && Number.isFinite(at)) record.timings[step] = at - performance.timeOrigin;
        }
        // Like `boxer run --timeout`: the clock starts when the guest does, not while it loads.
        if (timeout > 0) timer = setTimeout(() => end(TIMEOUT_EXIT_CODE, `timed out after ${timeout}s`), timeout * 1000);
      } else if (msg.type === "stdout" || msg.type === "stderr") {
        if (record.firstOutputMs === null) { record.firstOutputMs = record.timings.firstOutput = performance.now(); this.shown(); }
        record[msg.type] += decoders[msg.type].decode(msg.data, { stream: true });
        record[msg.type + "Bytes"] += msg.data.byteLength;
        const red = msg.type === "stderr" && !record.interactive; // a REPL's prompts go to stderr
        if (red) this.terminal.write("\x1b[31m");
        this.terminal.write(msg.data);
        if (red) this.terminal.write("\x1b[0m");
        if (this.console) this.console.output(new TextDecoder().decode(msg.data));
      } else if (msg.type === "memory") {
        guestMemory = msg.memory;
      } else if (msg.type === "stdin-taken") {
        if (this.console) this.console.taken();
      } else if (msg.type === "tail") {
        tails[msg.stream] = msg;
        record[msg.stream + "Bytes"] = msg.total; // how much the guest has written so far
      } else if (msg.type === "done") {
        // A CPython that let a KeyboardInterrupt end it exits with 130, which WASI does not allow;
        // one interrupted before its program began (in the snapshot's call) returns instead.
        const uncaught = record.interrupts > 0 && /invalid exit status.*: 130$/.test(msg.trap || "");
        const early = record.interrupts > 0 && /returned instead of exiting/.test(msg.trap || "");
        end(uncaught || early ? INTERRUPT_EXIT_CODE : msg.exitCode, uncaught ? null : early ? "interrupted" : msg.trap, msg);
      } else if (msg.type === "error") {
        end(msg.exitCode, msg.message);
        showError(msg.message);
      }
    };
    worker.onerror = (e) => { e.preventDefault(); end(125, `the launcher failed: ${e.message}`); showError(e.message); };
    let tty = null;
    if (record.interactive) {
      tty = makeChannel();
      this.console = new LineConsole(this.terminal, tty, () => this.ctrlC());
      this.terminal.options.disableStdin = false;
      this.terminal.focus();
    }
    // The default program's pre-initialised snapshot, for a run CPython would start as it did at its boot.
    const snapshot = compiled.snapshot;
    const resume = snapshot && !this.net && resumes(snapshot, argv, env, this.image.config.env)
      ? { head: snapshot.head, data: snapshot.data, preopens: snapshot.preopens, message: request(argv, env, workdir) } : null;
    record.preinitialised = !!resume;
    worker.postMessage({ module: compiled.module, root: this.root, argv: withPrelude(argv, compiled.prelude), env, workdir, cwdSlot: compiled.cwdSlot, stdin, tty, winsize, outDir: OUT_DIR, limits: this.limits, net: this.net, resume });
    record.timings.posted = performance.now(); // the tree is copied for the worker as it is posted
    setTimeout(this.shown, 1000); // a run that shows nothing for a while (waiting for input) gets the code pane
    return finished;
  }

  /** The rest of a stream after its head: all of it if it fit, else a marker and the tail. */
  endStream(record, stream, tail) {
    if (!tail) return;
    const text = new TextDecoder().decode(tail.data);
    record[stream + "Bytes"] = tail.total;
    if (tail.truncated) {
      record[stream + "Truncated"] = true;
      const shown = record[stream].length ? `the first ${size(this.limits.maxOutput - Math.floor(this.limits.maxOutput / 4))} and the last ${size(tail.data.byteLength)}` : "";
      this.terminal.write(`\n\x1b[33m[boxer: ${stream} truncated at ${this.limits.maxOutput} bytes: ${tail.total} bytes written, ${shown} kept]\x1b[0m\n`);
    }
    record[stream] += text;
    if (stream === "stderr") this.terminal.write("\x1b[31m");
    this.terminal.write(tail.data);
    if (stream === "stderr") this.terminal.write("\x1b[0m");
  }

  /** The last run's exit code, duration and notes go when a new run starts. */
  clearResult() {
    const code = $("exit-code");
    code.textContent = "–";
    delete code.dataset.code;
    code.className = "";
    $("duration").textContent = "–";
    $("note").textContent = "";
    $("truncated").textContent = "";
    $("truncated").hidden = true;
  }

  finish(record) {
    $("run").disabled = $("run-code").disabled = false;
    $("stop").disabled = true;
    const code = $("exit-code");
    code.textContent = String(record.exitCode);
    code.dataset.code = String(record.exitCode);
    code.className = record.exitCode === 0 ? "ok" : "fail";
    $("duration").textContent = `${record.durationMs.toFixed(0)} ms`;
    $("note").textContent = visible(record.trap || "");
    const cut = ["stdout", "stderr"].filter((s) => record[s + "Truncated"]).map((s) => `${s} truncated`);
    if (record.filesTruncated) cut.push("some /out files left out (over the size limit)");
    $("truncated").textContent = cut.join(" · ");
    $("truncated").hidden = !cut.length;
    if (record.trap) this.terminal.write(`\x1b[33mboxer: ${visible(record.trap)}\x1b[0m\n`);
    this.showFiles(record.files);
    setStatus("done", "done");
  }

  /** Forget the last run's files: its list, previews and object URLs, and its bytes (the
   *  record keeps each path and size). */
  freeFiles() {
    $("files").replaceChildren();
    $("preview").replaceChildren();
    $("files-none").hidden = false;
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    for (const record of this.runs) {
      record.files = record.files.map((f) => ({ path: f.path, size: f.size ?? f.data?.byteLength ?? 0 }));
    }
  }

  showFiles(files) {
    const list = $("files");
    const preview = $("preview");
    list.replaceChildren();
    preview.replaceChildren();
    const blobUrl = (data, type) => {
      const url = URL.createObjectURL(new Blob([data], { type }));
      this.urls.push(url);
      return url;
    };
    $("files-none").hidden = files.length > 0;
    for (const f of files.sort((a, b) => (a.path < b.path ? -1 : 1))) {
      const name = f.path.split("/").pop();
      const ext = name.includes(".") ? name.split(".").pop().toLowerCase() : "";
      const li = document.createElement("li");
      const link = document.createElement("a");
      // Downloads are opaque bytes: never a document of this page's origin.
      link.href = blobUrl(f.data, "application/octet-stream");
      link.download = downloadName(name);
      link.append(guestText(f.path));
      const bytes = document.createElement("span");
      bytes.className = "size";
      bytes.textContent = size(f.data.length);
      li.append(link, " ", bytes);
      list.append(li);
      if (ext === "html" || ext === "htm") {
        preview.append(this.htmlPreview(f));
      } else if (IMAGE_TYPES[ext]) {
        const img = document.createElement("img");
        img.src = blobUrl(f.data, IMAGE_TYPES[ext]);
        img.alt = visible(f.path);
        preview.append(figure(f.path, img));
      }
    }
  }

  htmlPreview(f) {
    const html = new TextDecoder().decode(f.data);
    const frame = inertFrame(html, visible(f.path));
    const fig = frame ? figure(f.path, frame) : figure(f.path, Object.assign(document.createElement("p"), {
      className: "meta", textContent: "this file cannot be previewed safely: download it",
    }));
    const button = document.createElement("button");
    button.type = "button";
    button.className = "run-scripts";
    button.textContent = "Run this file's scripts";
    const warning = document.createElement("span");
    warning.className = "meta";
    warning.textContent = " shown without scripts; its scripts would run apart from this page, but could still send data out (WebRTC, navigation)";
    button.addEventListener("click", () => {
      const ok = confirm(`Run the scripts of ${visible(f.path)}?\n\nThey run in a sandbox that cannot read this page, ` +
        "but the browser still lets them send data to other computers (WebRTC) and open connections. Only for files you trust.");
      if (!ok) return;
      const scripted = scriptFrame(html, visible(f.path), this.previewUrl);
      fig.firstChild.replaceWith(scripted);
      button.remove();
      warning.textContent = " scripts running";
    });
    fig.querySelector("figcaption").append(" ", button, warning);
    return fig;
  }
}

function figure(caption, content) {
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  cap.append(guestText(caption));
  fig.append(content, cap);
  return fig;
}

async function main() {
  const store = new Store();
  const loader = new Loader(new Worker(new URL("worker.js", document.baseURI)), store); // the first run's: it reads the store meanwhile
  const imageId = document.body.dataset.imageId || null;
  const storedImage = loader.get("image", imageId);
  const runtime = new Runtime(document.body.dataset, store, loader); // starts compiling before the image is fetched
  const app = new App(limitsOf(document.body.dataset), document.body.dataset.preview || "preview.html", runtime, store);
  app.spare = loader.worker;
  const hooks = { app, runs: app.runs, ready: null };
  window.boxer = hooks;
  const submit = async () => {
    try {
      await app.run($("command").value, new TextEncoder().encode($("stdin").value), parseFloat($("timeout").value) || 0,
        $("entrypoint").value);
    } catch (e) {
      showError(`the launcher failed: ${e.message}`);
    }
  };
  $("run-form").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  // The code pane runs its text as `python -c CODE` (the image's python, its ENTRYPOINT replaced).
  const runCode = async () => {
    if ($("run-code").disabled || !app.editor) return;
    try {
      await app.run(quote(["-c", app.editor.state.doc.toString()]), new TextEncoder().encode($("stdin").value),
        parseFloat($("timeout").value) || 0, "python");
    } catch (e) {
      showError(`the launcher failed: ${e.message}`);
    }
  };
  hooks.ready = Promise.all([app.load(document.body.dataset.image || "image.wasm", imageId, storedImage), import("./terminal.js").then((m) => app.openTerminal(m))]);
  hooks.ready.catch(() => {}); // handled below
  // The code pane's module (CodeMirror: parsing and setting it up hold the page's thread for a
  // while) loads once the first run has shown its output (at once without autorun), off its path.
  const editorAfter = autorun() ? hooks.ready.then(() => app.firstShown, () => {}) : Promise.resolve();
  hooks.editor = editorAfter.then(() => import("./editor.js")).then(({ createEditor }) => {
    app.editor = createEditor($("editor"), runCode);
    return app.editor;
  });
  hooks.editor.catch((e) => showError(`the code pane failed to load: ${e.message}`));
  $("run-code").addEventListener("click", runCode);
  $("stop").addEventListener("click", () => app.stop && app.stop());
  try {
    await hooks.ready;
  } catch (e) {
    $("image-id").textContent = "(not verified)";
    showError(e instanceof ImageError ? e.message : `cannot load the image: ${e.message}`);
    $("run").disabled = true;
    return;
  }
  $("run").disabled = $("run-code").disabled = false;
  // The image's command runs on load only on a page built with --autorun (and not with ?run=0).
  if (autorun()) submit();
}

function autorun() {
  return document.body.dataset.autorun === "1" && new URLSearchParams(location.search).get("run") !== "0";
}

main();
