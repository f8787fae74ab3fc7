// The site's large files kept between visits in Cache Storage, keyed by their sha256, so a
// returning visitor downloads none of them again: image.wasm (under its id, the sha256 of its
// manifest), runtime-<sha256>.wasm and preinit-<sha256>.bin (under the digest in their names).
// An entry is only a hint: every read is checked again (the image by decodeImage and its id,
// the others by their bytes' sha256), and one that fails is deleted and fetched anew. One
// cache per page path; entries this page no longer names are deleted (`keep`). Where there is
// no Cache Storage (not a secure context), everything is fetched, as before.

import { sha256 } from "./image.js";

const PREFIX = "boxer-v1:";

export class Store {
  constructor() {
    this.cache = self.caches ? caches.open(PREFIX + location.pathname).catch(() => null) : Promise.resolve(null);
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
    const wanted = new Set(digests.filter(Boolean).map((d) => this.key(d)));
    for (const request of await cache.keys().catch(() => [])) {
      if (!wanted.has(request.url)) await cache.delete(request).catch(() => false);
    }
  }

  /** The bytes of `url`, whose sha256 is `digest`: from the store if they check out there,
   *  else fetched, checked and stored. Throws if the fetched bytes do not match. */
  async verified(url, digest) {
    const stored = await this.get(digest);
    if (stored && (await sha256(stored)) === digest) return { bytes: stored, fetched: false };
    if (stored) await this.delete(digest);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: cannot fetch (HTTP ${response.status})`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if ((await sha256(bytes)) !== digest) throw new Error(`${url}: its bytes do not match its sha256 (tampered or corrupt)`);
    await this.put(digest, bytes);
    return { bytes, fetched: true };
  }
}

/** The module of `url`, a WebAssembly file whose sha256 is `digest`, compiled while it streams
 *  in (from the store, else from the network, then stored), and used only if its bytes match. */
export async function compileVerified(store, url, digest) {
  for (const fromStore of [true, false]) {
    const cache = fromStore ? await store.cache : null;
    let response = cache ? await cache.match(store.key(digest)).catch(() => null) : null;
    if (fromStore && !response) continue;
    let bytes;
    if (response) {
      // A stored copy: read once as a Blob, which both the compiler and the check read from.
      const blob = await response.blob();
      response = new Response(blob, { headers: { "Content-Type": "application/wasm" } });
      bytes = blob.arrayBuffer();
    } else {
      response = await fetch(url);
      if (!response.ok) throw new Error(`${url}: cannot fetch (HTTP ${response.status})`);
    }
    const compiling = WebAssembly.compileStreaming(bytes ? response : response.clone());
    compiling.catch(() => {});
    bytes = new Uint8Array(await (bytes || response.arrayBuffer()));
    if ((await sha256(bytes)) === digest) {
      if (!fromStore) await store.put(digest, bytes, "application/wasm");
      return compiling;
    }
    if (!fromStore) throw new Error(`${url}: its bytes do not match its sha256 (tampered or corrupt)`);
    await store.delete(digest);
  }
}

/** The sha256 a site file's name carries (runtime-<hex>.wasm, preinit-<hex>.bin), or null. */
export function nameDigest(name) {
  const found = /-([0-9a-f]{64})\.[a-z]+$/.exec(name || "");
  return found ? "sha256:" + found[1] : null;
}
