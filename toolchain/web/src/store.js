// The site's large files kept between visits in Cache Storage, keyed by their sha256, so a
// returning visitor downloads none of them again: image.wasm (under its id, the sha256 of its
// manifest), runtime-<sha256>.wasm and preinit-<sha256>.bin (under the digest in their names).
// An entry is only a hint: every read is checked again (the image by decodeImage and its id,
// the others by their bytes' sha256), and one that fails is deleted and fetched anew. One
// cache per page path; entries this page no longer names are deleted (`keep`). Where there is
// no Cache Storage (not a secure context), everything is fetched, as before. A returning visit's
// stored copies are read and checked in a worker, off the page's thread (Loader, loader.js).

import { sha256 } from "./image.js";

const PREFIX = "boxer-v1:";
// Which digests this page has stored, in localStorage (the page's only: a worker has none). Cache
// Storage takes a while to open on a first visit (about 0.15 s in Chromium on a new profile), so
// the page asks for a stored copy only where this list names it, and fetches the rest at once.
// Only a hint, like the entries: a listed copy is still read and checked, a missing one fetched.
const HINT = "boxer-stored:";

export class Store {
  /** The store of the page at `path` (a worker's own location is its script's, in the page's directory). */
  constructor(path = location.pathname) {
    this.cache = self.caches ? caches.open(PREFIX + path).catch(() => null) : Promise.resolve(null);
    this.hintKey = HINT + path;
  }

  /** The digests the hint lists, or null where there is no list to keep (a worker, no storage). */
  hints() {
    try {
      if (!self.caches || typeof localStorage === "undefined") return null;
      const list = JSON.parse(localStorage.getItem(this.hintKey) || "[]");
      return Array.isArray(list) ? list : [];
    } catch {
      return null;
    }
  }

  setHints(list) {
    try {
      localStorage.setItem(this.hintKey, JSON.stringify(list));
    } catch {
      // no storage: the page asks for every stored copy
    }
  }

  /** Whether a stored copy of `digest` may be there (false: fetch it without looking). */
  mayHave(digest) {
    const list = this.hints();
    return list === null || list.includes(digest);
  }

  key(digest) {
    return new URL(`boxer-store/${digest.replace(":", "-")}`, location.href).href;
  }

  /** The stored bytes of `digest` (unchecked: the caller checks them), or null. */
  async get(digest) {
    const cache = await this.cache;
    if (!cache) return null;
    try {
      // Read as a Blob: one read of the stored file, instead of the body's stream of chunks
      // through the page's thread (about 3x faster for the 26 MB image in Chromium).
      const found = await cache.match(this.key(digest));
      return found ? new Uint8Array(await (await found.blob()).arrayBuffer()) : null;
    } catch {
      return null;
    }
  }

  async put(digest, bytes, type = "application/octet-stream") {
    const cache = await this.cache;
    if (!cache) return;
    try {
      await cache.put(this.key(digest), new Response(bytes, { headers: { "Content-Type": type } }));
      const list = this.hints();
      if (list && !list.includes(digest)) this.setHints([...list, digest]);
    } catch {
      // full or refused: the next visit fetches it again
    }
  }

  async delete(digest) {
    const cache = await this.cache;
    if (cache) await cache.delete(this.key(digest)).catch(() => false);
  }

  /** Delete what is stored for this page but not under `digests`. */
  async keep(digests) {
    const cache = await this.cache;
    if (!cache) return;
    const list = this.hints();
    if (list) this.setHints(list.filter((d) => digests.includes(d)));
    const wanted = new Set(digests.filter(Boolean).map((d) => this.key(d)));
    for (const request of await cache.keys().catch(() => [])) {
      if (!wanted.has(request.url)) await cache.delete(request).catch(() => false);
    }
  }

  /** The bytes of `url`, whose sha256 is `digest`: `checked` (a promise of the stored copy, read
   *  and checked by a Loader) if there was one, else fetched, checked and stored. Throws if the
   *  fetched bytes do not match. */
  async verified(url, digest, checked) {
    const stored = await checked;
    if (stored) return { bytes: stored, fetched: false };
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: cannot fetch (HTTP ${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if ((await sha256(bytes)) !== digest) throw new Error(`${url}: its bytes do not match its sha256 (tampered or corrupt)`);
    this.put(digest, bytes); // not awaited: the run does not wait for the store's write
    return { bytes, fetched: true };
  }
}

/** The module of `url`, a WebAssembly file whose sha256 is `digest`: `checked` (a promise of the
 *  module a Loader compiled from the stored copy, once its bytes matched) if there was one, else
 *  compiled while it streams in from the network, used only if its bytes match, and stored. */
export async function compileVerified(store, url, digest, checked) {
  const stored = await checked;
  if (stored) return stored;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: cannot fetch (HTTP ${response.status})`);
  const compiling = WebAssembly.compileStreaming(response.clone());
  compiling.catch(() => {});
  const bytes = new Uint8Array(await response.arrayBuffer());
  if ((await sha256(bytes)) !== digest) throw new Error(`${url}: its bytes do not match its sha256 (tampered or corrupt)`);
  store.put(digest, bytes, "application/wasm"); // not awaited, as above
  return compiling;
}

/** The page's stored files, each read and checked in `worker` (the first run's, started as the
 *  page opens: loader.js), so neither the reading nor the hashing (WebCrypto copies what it hashes)
 *  nor the runtime's compiling holds the page's thread. `get` answers a promise of the checked
 *  value, or null for a file not stored or failing its check (deleted there): the caller fetches it. */
export class Loader {
  constructor(worker, store) {
    Object.assign(this, { worker, store, waiting: new Map(), next: 0 });
    worker.addEventListener("message", ({ data }) => {
      if (data && data.type === "stored" && this.waiting.has(data.id)) this.answer(data.id, data.value);
    });
    worker.addEventListener("error", () => { for (const id of [...this.waiting.keys()]) this.answer(id, null); });
  }

  answer(id, value) {
    this.waiting.get(id)(value);
    this.waiting.delete(id);
  }

  /** `what`: "image" (decoded, every blob and its id `digest` checked), "module" (compiled) or "bytes". */
  get(what, digest) {
    if (!digest || !this.store.mayHave(digest)) return Promise.resolve(null);
    const id = this.next++;
    const value = new Promise((resolve) => this.waiting.set(id, resolve));
    this.worker.postMessage({ type: "stored", id, what, digest, path: location.pathname, share: self.crossOriginIsolated === true });
    return value;
  }
}

/** The sha256 a site file's name carries (runtime-<hex>.wasm, preinit-<hex>.bin), or null. */
export function nameDigest(name) {
  const found = /-([0-9a-f]{64})\.[a-z]+$/.exec(name || "");
  return found ? "sha256:" + found[1] : null;
}
