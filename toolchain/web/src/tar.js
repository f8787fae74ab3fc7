// Layer tars (ustar, pax and GNU long names) applied in order to an in-memory tree, the way
// src/boxer_py/rootfs.py extracts them: no member lands outside the root (`..` is refused,
// symlinks in parent paths are followed inside the tree only), devices and fifos are refused,
// OCI whiteouts delete what they name.

import { ImageError, unshared } from "./image.js";

const decoder = new TextDecoder();
// A stored image comes in a SharedArrayBuffer (loader.js), which TextDecoder does not read.
const decode = (bytes) => decoder.decode(unshared(bytes));

function text(block, start, length) {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return decode(nul < 0 ? field : field.subarray(0, nul));
}

function octal(block, start, length) {
  if (block[start] & 0x80) {
    let value = 0;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i];
    return value;
  }
  const s = text(block, start, length).trim();
  return s ? parseInt(s, 8) : 0;
}

function paxRecords(data) {
  const out = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const length = parseInt(decode(data.subarray(pos, space)), 10);
    if (!(length > 0)) break;
    const record = decode(data.subarray(space + 1, pos + length - 1));
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += length;
  }
  return out;
}

/** The members of a tar: {name, type: "file"|"dir"|"symlink"|"hardlink", mode, data, linkname}. */
export function parseTar(data, what) {
  const members = [];
  let pos = 0;
  let pax = {};
  let longName = null;
  let longLink = null;
  while (pos + 512 <= data.length) {
    const block = data.subarray(pos, pos + 512);
    if (block.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : block[i];
    if (sum !== octal(block, 148, 8)) throw new ImageError(`${what}: corrupt tar header at byte ${pos}`);
    const flag = String.fromCharCode(block[156] || 0x30);
    const size = pax.size !== undefined ? parseInt(pax.size, 10) : octal(block, 124, 12);
    const body = data.subarray(pos + 512, pos + 512 + size);
    if (body.length !== size) throw new ImageError(`${what}: truncated tar`);
    pos += 512 + Math.ceil(size / 512) * 512;
    if (flag === "x") { pax = { ...pax, ...paxRecords(body) }; continue; }
    if (flag === "g") continue;
    if (flag === "L") { longName = text(body, 0, body.length); continue; }
    if (flag === "K") { longLink = text(body, 0, body.length); continue; }
    const prefix = text(block, 257, 6).startsWith("ustar") ? text(block, 345, 155) : "";
    const name = pax.path ?? longName ?? (prefix ? prefix + "/" : "") + text(block, 0, 100);
    const linkname = pax.linkpath ?? longLink ?? text(block, 157, 100);
    const mode = octal(block, 100, 8);
    pax = {};
    longName = longLink = null;
    const type = { 0: "file", 7: "file", 1: "hardlink", 2: "symlink", 5: "dir" }[flag];
    if (!type) throw new ImageError(`${what}: member ${JSON.stringify(name)} is a device or fifo, which an image cannot hold`);
    members.push({ name, type, mode, data: type === "file" ? body : null, linkname });
  }
  return members;
}

// The tree: {type: "dir", entries: Map}, {type: "file", data, mode}, {type: "symlink", target}.
export function newDir() {
  return { type: "dir", entries: new Map(), mode: 0o755 };
}

const MAX_LINKS = 40;
const WHITEOUT = ".wh.";

function parts(path) {
  return path.split("/").filter((p) => p !== "" && p !== ".");
}

/** The node at guest path `path`, following symlinks as a chroot would; null if missing.
 *  Returns {dir, name, node}: the directory holding the last component, and that node. */
export function lookup(root, path, followLast = true) {
  let todo = parts(path);
  let stack = [root];
  let links = 0;
  let name = "";
  while (todo.length) {
    const part = todo.shift();
    if (part === "..") {
      if (stack.length > 1) stack.pop();
      name = "";
      continue;
    }
    const dir = stack[stack.length - 1];
    if (dir.type !== "dir") return { dir: null, name: part, node: null };
    const node = dir.entries.get(part);
    if (node && node.type === "symlink" && (todo.length || followLast)) {
      if (++links > MAX_LINKS) throw new ImageError(`too many levels of symbolic links in ${path}`);
      if (node.target.startsWith("/")) stack = [root];
      todo = parts(node.target).concat(todo);
      continue;
    }
    if (!todo.length) return { dir, name: part, node: node ?? null };
    if (!node) return { dir: null, name: part, node: null };
    stack.push(node);
  }
  return { dir: null, name, node: stack[stack.length - 1] };
}

/** mkdir -p inside the tree (following symlinks inside it); the directory node, or null. */
export function makeDirs(root, path) {
  let dir = root;
  let done = "";
  for (const part of parts(path)) {
    if (part === "..") return null; // callers pass normalized paths
    done += "/" + part;
    const found = lookup(root, done);
    if (found.node) {
      dir = found.node;
    } else {
      if (!found.dir) return null;
      dir = newDir();
      found.dir.entries.set(found.name, dir);
    }
    if (dir.type !== "dir") return null;
  }
  return dir;
}

/** Apply one layer's members to the tree. */
export function applyLayer(root, members, what) {
  for (const m of members) {
    if (m.name.split("/").includes("..")) throw new ImageError(`${what}: member ${JSON.stringify(m.name)} points outside its root ('..')`);
    const names = parts(m.name);
    if (!names.length) continue;
    const base = names.pop();
    const parent = makeDirs(root, names.join("/"));
    if (!parent) throw new ImageError(`${what}: ${names.join("/")} is not a directory`);
    if (base.startsWith(WHITEOUT)) { // OCI whiteout: this layer deletes the named entry below it
      const gone = base.slice(WHITEOUT.length);
      if (gone === WHITEOUT + ".opq") parent.entries.clear();
      else if (gone !== "" && gone !== "." && gone !== "..") parent.entries.delete(gone);
      continue;
    }
    const existing = parent.entries.get(base);
    if (m.type === "dir") {
      if (!existing || existing.type !== "dir") parent.entries.set(base, newDir());
      parent.entries.get(base).mode = m.mode & 0o7777 || 0o755;
    } else if (m.type === "file") {
      parent.entries.set(base, { type: "file", data: m.data, mode: m.mode & 0o7777 });
    } else if (m.type === "symlink") {
      parent.entries.set(base, { type: "symlink", target: m.linkname });
    } else {
      if (m.linkname.split("/").includes("..")) throw new ImageError(`${what}: hard link ${JSON.stringify(m.name)} points outside its root`);
      const source = lookup(root, m.linkname, false).node;
      if (!source || source.type !== "file") throw new ImageError(`${what}: hard link ${JSON.stringify(m.name)} to a missing file ${JSON.stringify(m.linkname)}`);
      parent.entries.set(base, { type: "file", data: source.data, mode: source.mode });
    }
  }
}

/** The root filesystem of an image: its layers applied in order to an empty tree. */
export function buildRootfs(layers) {
  const root = newDir();
  for (const layer of layers) {
    const what = `layer ${layer.digest.slice(0, 19)}`;
    applyLayer(root, parseTar(layer.data, what), what);
  }
  return root;
}
