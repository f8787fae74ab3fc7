// The worker's side of store.js's Loader: the page's stored files read from its store, checked
// and (the runtime) compiled here, in the next run's worker while the page sets up, instead of on
// the page's thread. What fails its check is deleted and answered null (the page fetches it).
// Nothing here runs a guest: the worker runs its run only when the page hands it one.

import { decodeImage, sha256 } from "./image.js";
import { Store } from "./store.js";

/** [value, transfer list] for the page: the image (decoded, every blob and its id checked; on a
 *  cross-origin isolated page its bytes in a SharedArrayBuffer, which the page shares with its
 *  runs), the runtime's module (compiled from the bytes that were hashed) or the bytes. */
export async function stored({ what, digest, path, share }) {
  const store = new Store(path);
  const bytes = await store.get(digest);
  if (!bytes) return [null, []];
  let value = null;
  if (what === "image") {
    const image = await decodeImage(bytes, "image.wasm (stored)").catch(() => null);
    value = image && image.id === digest ? (share ? shared(image, bytes) : image) : null;
  } else {
    const compiling = what === "module" ? WebAssembly.compile(bytes) : null; // it copies the bytes at once
    if (compiling) compiling.catch(() => {});
    value = (await sha256(bytes)) === digest ? (compiling ? await compiling.catch(() => null) : bytes) : null;
  }
  if (value === null) {
    await store.delete(digest);
    return [null, []];
  }
  // The bytes are handed over, not copied (a shared image's, or a module's, are not needed).
  const handed = what === "bytes" || (what === "image" && value.layers.every((l) => l.data.buffer === bytes.buffer));
  return [value, handed ? [bytes.buffer] : []];
}

/** The image with its layers as views of one SharedArrayBuffer copy of `bytes`. */
function shared(image, bytes) {
  if (typeof SharedArrayBuffer !== "function") return image;
  const copy = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  copy.set(bytes);
  return { ...image, layers: image.layers.map((l) => ({ ...l, data: copy.subarray(l.data.byteOffset, l.data.byteOffset + l.data.byteLength) })) };
}
