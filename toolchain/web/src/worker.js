// One run, in its own Web Worker: a private copy of the image's filesystem (structured-cloned
// into this worker, so nothing a run writes outlives it), the WASI preview1 imports of
// @bjorn3/browser_wasi_shim and nothing else, then `_start`. Output is posted as it comes.

import { WASI, File, Directory, PreopenDirectory, OpenFile, ConsoleStdout } from "@bjorn3/browser_wasi_shim";
import { lookup, makeDirs } from "./tar.js";
import { setCwd } from "./wasicwd.js";

const WASI_MODULE = "wasi_snapshot_preview1";
const ERRNO_NOTSUP = 58;
const TRAP_EXIT_CODE = 134;

/** The tree as shim inodes. Files are copied (File() copies its data); a symlink becomes
 *  another name for what it resolves to inside the root, and is dropped if that is missing. */
function materialize(root) {
  const memo = new Map();
  const links = [];
  const build = (node, path) => {
    if (memo.has(node)) return memo.get(node);
    let inode;
    if (node.type === "file") {
      inode = new File(node.data);
    } else {
      const contents = new Map();
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

function collect(dir, path, out) {
  for (const [name, inode] of dir.contents) {
    if (inode instanceof File) out.push({ path: path + "/" + name, data: inode.data.slice() });
    else if (inode instanceof Directory) collect(inode, path + "/" + name, out);
  }
  return out;
}

function run({ module, root, argv, env, workdir, cwdSlot, stdin, outDir }) {
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module !== WASI_MODULE) {
      throw Object.assign(new Error(`${argv[0]}: imports ${imp.module}.${imp.name}, which is not WASI preview1: only WASI programs run here`), { exitCode: 126 });
    }
  }
  if (!makeDirs(root, workdir)) throw new Error(`the working directory ${workdir} is not a directory`);
  if (outDir) makeDirs(root, outDir);
  const preopen = materialize(root);
  const send = (type) => new ConsoleStdout((data) => {
    const copy = data.slice();
    postMessage({ type, data: copy }, [copy.buffer]);
  });
  const wasi = new WASI(argv, env, [new OpenFile(new File(stdin)), send("stdout"), send("stderr"), preopen], { debug: false });
  for (const name of ["sock_accept", "sock_recv", "sock_send", "sock_shutdown"]) wasi.wasiImport[name] = () => ERRNO_NOTSUP;
  const missing = WebAssembly.Module.imports(module).find((imp) => !(imp.name in wasi.wasiImport));
  if (missing) throw Object.assign(new Error(`${argv[0]}: needs WASI function ${missing.name}, which this launcher does not provide`), { exitCode: 126 });
  const instance = new WebAssembly.Instance(module, { [WASI_MODULE]: wasi.wasiImport });
  const { memory, _start } = instance.exports;
  if (typeof _start !== "function" || !(memory instanceof WebAssembly.Memory)) {
    throw Object.assign(new Error(`${argv[0]}: not a WASI command (no _start)`), { exitCode: 126 });
  }
  if (workdir !== "/" && cwdSlot !== null) setCwd(memory, cwdSlot, workdir);
  postMessage({ type: "started" });
  const started = performance.now();
  let exitCode = 0;
  let trap = null;
  try {
    exitCode = wasi.start(instance);
  } catch (e) {
    exitCode = TRAP_EXIT_CODE;
    trap = e instanceof Error ? e.message : String(e);
  }
  if (exitCode > 125 && trap === null) {
    trap = `exit with invalid exit status outside of [0..126): ${exitCode}`;
    exitCode = TRAP_EXIT_CODE;
  }
  const durationMs = performance.now() - started;
  let dir = outDir ? preopen.dir : null;
  for (const part of (outDir || "").split("/").filter(Boolean)) dir = dir instanceof Directory ? dir.contents.get(part) : null;
  const files = dir instanceof Directory ? collect(dir, outDir, []) : [];
  postMessage({ type: "done", exitCode, durationMs, trap, files }, files.map((f) => f.data.buffer));
}

self.onmessage = (event) => {
  try {
    run(event.data);
  } catch (e) {
    postMessage({ type: "error", message: e.message || String(e), exitCode: e.exitCode ?? 125 });
  }
};
