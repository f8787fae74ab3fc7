// The page: fetch image.wasm, verify it, unpack its filesystem in memory, and run commands
// from the form, each in a fresh Web Worker (worker.js), showing output in an xterm terminal,
// the exit code, the duration and the files left under /out.

import { Terminal } from "@xterm/xterm";
import { decodeImage, ImageError } from "./image.js";
import { buildRootfs } from "./tar.js";
import { plan, findProgram, shellWords, RunError } from "./command.js";
import { findCwdSlot } from "./wasicwd.js";

const OUT_DIR = "/out";
const TIMEOUT_EXIT_CODE = 124;
const STOPPED_EXIT_CODE = 137;
const PREVIEW_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:";
const IMAGE_TYPES = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp", svg: "image/svg+xml" };

const $ = (id) => document.getElementById(id);

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = false;
  setStatus("error", "error");
}

function quote(argv) {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'")).join(" ");
}

function size(n) {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

class App {
  constructor() {
    this.image = null;
    this.root = null;
    this.modules = new Map(); // program node -> Promise<{module, cwdSlot}>
    this.worker = null;
    this.runs = [];
    this.urls = []; // object URLs of the last run's files, revoked when the next run shows its own
    this.terminal = new Terminal({ convertEol: true, rows: 20, fontSize: 13, scrollback: 5000, disableStdin: true });
    this.terminal.open($("terminal"));
  }

  async load(url) {
    setStatus("loading", `fetching ${url}…`);
    let data;
    try {
      const response = await fetch(url);
      if (!response.ok) throw new ImageError(`${url}: cannot fetch (HTTP ${response.status})`);
      data = new Uint8Array(await response.arrayBuffer());
    } catch (e) {
      throw e instanceof ImageError ? e : new ImageError(`${url}: cannot fetch (${e.message})`);
    }
    setStatus("loading", `verifying ${size(data.length)}…`);
    this.image = await decodeImage(data, url.split("/").pop());
    this.root = buildRootfs(this.image.layers);
    const c = this.image.config;
    $("image-id").textContent = this.image.id.slice(0, 19);
    $("image-tag").textContent = this.image.tag || "(untagged)";
    $("command").placeholder = quote(c.entrypoint.concat(c.cmd)) || "command";
    $("workdir").textContent = c.workingDir;
    setStatus("ready", "ready");
  }

  compiled(program) {
    if (!this.modules.has(program.node)) {
      const bytes = program.node.data;
      this.modules.set(program.node, WebAssembly.compile(bytes).then((module) => ({ module, cwdSlot: findCwdSlot(bytes) })));
    }
    return this.modules.get(program.node);
  }

  async run(line, stdin, timeout) {
    if (this.worker) return;
    $("error").hidden = true;
    const record = { command: line, stdout: "", stderr: "", exitCode: null, durationMs: null, trap: null, files: [], done: false, firstOutputMs: null };
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    this.runs.push(record);
    const t0 = performance.now();
    let argv, env, path, workdir, program;
    try {
      ({ argv, env, path, workdir } = plan(this.image.config, shellWords(line)));
      program = findProgram(this.root, argv[0], path, workdir);
    } catch (e) {
      if (!(e instanceof RunError)) throw e;
      Object.assign(record, { exitCode: e.exitCode, trap: e.message, durationMs: 0, done: true });
      this.finish(record);
      showError(e.message);
      return record;
    }
    this.terminal.write(`\x1b[2m$ ${quote(argv)}\x1b[0m\n`);
    setStatus("compiling", `compiling ${program.guest} (${size(program.node.data.length)})…`);
    const { module, cwdSlot } = await this.compiled(program);
    setStatus("running", "running…");
    $("run").disabled = true;
    $("stop").disabled = false;
    const worker = new Worker(new URL("worker.js", document.baseURI));
    this.worker = worker;
    const finished = new Promise((resolve) => {
      const end = (exitCode, note, files = [], durationMs = performance.now() - t0) => {
        if (this.worker !== worker) return;
        worker.terminate();
        this.worker = null;
        clearTimeout(timer);
        Object.assign(record, { exitCode, trap: note, durationMs, files, done: true });
        record.stdout += decoders.stdout.decode();
        record.stderr += decoders.stderr.decode();
        this.finish(record);
        resolve(record);
      };
      // Like `boxer run --timeout`: the clock starts when the guest does, not while it loads.
      let timer = null;
      this.stop = () => end(STOPPED_EXIT_CODE, "stopped");
      worker.onmessage = ({ data: msg }) => {
        if (msg.type === "started") {
          if (timeout > 0) timer = setTimeout(() => end(TIMEOUT_EXIT_CODE, `timed out after ${timeout}s`), timeout * 1000);
        } else if (msg.type === "stdout" || msg.type === "stderr") {
          if (record.firstOutputMs === null) record.firstOutputMs = performance.now();
          record[msg.type] += decoders[msg.type].decode(msg.data, { stream: true });
          if (msg.type === "stderr") this.terminal.write("\x1b[31m");
          this.terminal.write(msg.data);
          if (msg.type === "stderr") this.terminal.write("\x1b[0m");
        } else if (msg.type === "done") {
          end(msg.exitCode, msg.trap, msg.files, msg.durationMs);
        } else if (msg.type === "error") {
          end(msg.exitCode, msg.message);
          showError(msg.message);
        }
      };
      worker.onerror = (e) => { e.preventDefault(); end(125, `the launcher failed: ${e.message}`); showError(e.message); };
    });
    worker.postMessage({ module, root: this.root, argv, env, workdir, cwdSlot, stdin, outDir: OUT_DIR });
    return finished;
  }

  finish(record) {
    $("run").disabled = false;
    $("stop").disabled = true;
    const code = $("exit-code");
    code.textContent = String(record.exitCode);
    code.dataset.code = String(record.exitCode);
    code.className = record.exitCode === 0 ? "ok" : "fail";
    $("duration").textContent = `${record.durationMs.toFixed(0)} ms`;
    $("note").textContent = record.trap || "";
    if (record.trap) this.terminal.write(`\x1b[33mboxer: ${record.trap}\x1b[0m\n`);
    this.showFiles(record.files);
    setStatus("done", "done");
  }

  showFiles(files) {
    const list = $("files");
    const preview = $("preview");
    list.replaceChildren();
    preview.replaceChildren();
    for (const url of this.urls) URL.revokeObjectURL(url);
    const blobUrl = (data, type) => {
      const url = URL.createObjectURL(new Blob([data], { type }));
      this.urls.push(url);
      return url;
    };
    this.urls = [];
    $("files-none").hidden = files.length > 0;
    for (const f of files.sort((a, b) => (a.path < b.path ? -1 : 1))) {
      const name = f.path.split("/").pop();
      const ext = name.includes(".") ? name.split(".").pop().toLowerCase() : "";
      const li = document.createElement("li");
      const link = document.createElement("a");
      // Downloads are opaque bytes: never a document of this page's origin.
      link.href = blobUrl(f.data, "application/octet-stream");
      link.download = name;
      link.textContent = f.path;
      li.append(link, ` ${size(f.data.length)}`);
      list.append(li);
      if (ext === "html" || ext === "htm") {
        const frame = document.createElement("iframe");
        // No allow-same-origin: the document gets an opaque origin and cannot touch this page.
        frame.setAttribute("sandbox", "allow-scripts");
        frame.setAttribute("referrerpolicy", "no-referrer");
        frame.title = f.path;
        frame.srcdoc = `<meta http-equiv="Content-Security-Policy" content="${PREVIEW_CSP}">` + new TextDecoder().decode(f.data);
        preview.append(figure(f.path, frame));
      } else if (IMAGE_TYPES[ext]) {
        const img = document.createElement("img");
        img.src = blobUrl(f.data, IMAGE_TYPES[ext]);
        img.alt = f.path;
        preview.append(figure(f.path, img));
      }
    }
  }
}

function figure(caption, content) {
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(content, cap);
  return fig;
}

async function main() {
  const app = new App();
  const hooks = { app, runs: app.runs, ready: null };
  window.boxer = hooks;
  const submit = async () => {
    try {
      await app.run($("command").value, new TextEncoder().encode($("stdin").value), parseFloat($("timeout").value) || 0);
    } catch (e) {
      $("run").disabled = false;
      showError(`the launcher failed: ${e.message}`);
    }
  };
  $("run-form").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  $("stop").addEventListener("click", () => app.stop && app.stop());
  try {
    hooks.ready = app.load(document.body.dataset.image || "image.wasm");
    await hooks.ready;
  } catch (e) {
    $("image-id").textContent = "(not verified)";
    showError(e instanceof ImageError ? e.message : `cannot load the image: ${e.message}`);
    $("run").disabled = true;
    return;
  }
  $("run").disabled = false;
  if (new URLSearchParams(location.search).get("run") !== "0") submit();
}

main();
