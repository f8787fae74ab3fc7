// The image file (see src/boxer_py/imagefile.py): an empty Wasm module header, then custom
// sections "boxer.manifest" (JSON) and "boxer.blob:sha256:<hex>" (config JSON, layer tars).
// Every blob is checked against its digest with WebCrypto before anything uses it.

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const MANIFEST = "boxer.manifest";
const BLOB = "boxer.blob:";

export class ImageError extends Error {}

function readLeb(data, pos, where) {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= data.length || shift > 35) throw new ImageError(`${where}: truncated or corrupt (bad section header)`);
    const byte = data[pos++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [result, pos];
  }
}

/** `bytes`, copied if they lie in a SharedArrayBuffer (the page's shared tree, main.js), which
 *  WebCrypto, TextDecoder and WebAssembly.compile do not take. */
export function unshared(bytes) {
  return typeof SharedArrayBuffer === "function" && bytes.buffer instanceof SharedArrayBuffer ? bytes.slice() : bytes;
}

export async function sha256(bytes) {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", unshared(bytes)));
  return "sha256:" + Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

function descriptor(d) {
  if (!d || typeof d.digest !== "string" || typeof d.size !== "number") throw new Error("bad descriptor");
  return { mediaType: String(d.mediaType), digest: d.digest, size: d.size };
}

/** Parse and verify an image file. Returns {id, manifest, config, layers: Uint8Array[]}. */
export async function decodeImage(data, where = "image.wasm") {
  if (data.length < 8 || HEADER.some((b, i) => data[i] !== b)) {
    throw new ImageError(`${where}: not a WebAssembly file`);
  }
  let pos = 8;
  let manifestRaw = null;
  const sections = new Map();
  const decoder = new TextDecoder();
  while (pos < data.length) {
    if (data[pos] !== 0) {
      throw new ImageError(`${where}: not a boxer image (it is a WebAssembly program: copy it into an image FROM scratch)`);
    }
    let size, body, nameLen;
    [size, pos] = readLeb(data, pos + 1, where);
    const end = pos + size;
    if (end > data.length) throw new ImageError(`${where}: truncated (a section runs past the end of the file)`);
    [nameLen, body] = readLeb(data, pos, where);
    const name = decoder.decode(data.subarray(body, body + Math.min(nameLen, 200)));
    if (name === MANIFEST) manifestRaw = data.subarray(body + nameLen, end);
    else if (name.startsWith(BLOB)) sections.set(name.slice(BLOB.length), data.subarray(body + nameLen, end));
    else throw new ImageError(`${where}: unexpected section ${JSON.stringify(name.slice(0, 40))} (tampered or not a boxer image)`);
    pos = end;
  }
  if (manifestRaw === null) throw new ImageError(`${where}: not a boxer image (no manifest)`);
  let manifest, configDesc, layerDescs;
  try {
    manifest = JSON.parse(decoder.decode(manifestRaw));
    configDesc = descriptor(manifest.config);
    layerDescs = manifest.layers.map(descriptor);
  } catch {
    throw new ImageError(`${where}: corrupt manifest`);
  }
  const named = new Set([configDesc, ...layerDescs].map((d) => d.digest));
  const missing = [...named].filter((d) => !sections.has(d)).sort();
  if (missing.length || sections.size !== named.size) {
    const what = missing.length ? `blob ${missing[0].slice(0, 19)} is missing` : "it holds blobs its manifest does not name";
    throw new ImageError(`${where}: ${what} (truncated or tampered)`);
  }
  for (const d of [configDesc, ...layerDescs]) {
    if (sections.get(d.digest).length !== d.size) throw new ImageError(`${where}: blob ${d.digest.slice(0, 19)} has the wrong size (tampered)`);
  }
  for (const [digest, blob] of sections) {
    if ((await sha256(blob)) !== digest) {
      throw new ImageError(`${where}: blob ${digest.slice(0, 19)} fails its digest check (tampered or corrupt)`);
    }
  }
  let doc;
  try {
    doc = JSON.parse(decoder.decode(sections.get(configDesc.digest)));
  } catch {
    throw new ImageError(`${where}: corrupt config`);
  }
  const diffIds = (doc.rootfs && doc.rootfs.diff_ids) || [];
  if (diffIds.length !== layerDescs.length || diffIds.some((d, i) => d !== layerDescs[i].digest)) {
    throw new ImageError(`${where}: config and manifest disagree on the layers (tampered)`);
  }
  return {
    id: await sha256(manifestRaw),
    tag: (manifest.annotations || {})["org.opencontainers.image.ref.name"] || "",
    config: configFromOci(doc.config || {}),
    layers: layerDescs.map((d) => ({ digest: d.digest, data: sections.get(d.digest) })),
  };
}

function strings(value) {
  return Array.isArray(value) ? value.map(String) : [];
}

/** The run config, with the defaults of src/boxer_py/config.py. */
export function configFromOci(c) {
  return {
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
    env: strings(c.Env),
    workingDir: c.WorkingDir || "/",
    user: c.User || "",
  };
}
