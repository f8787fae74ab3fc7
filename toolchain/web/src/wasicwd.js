// Starting a WASI program in its WORKDIR, as src/boxer_py/wasicwd.py does: wasi-libc keeps the
// current directory in the guest global `__wasilibc_cwd` (a pointer to "/"); find that data
// word (the one pointing at "/\0" that code names by address), and before `_start`
// point it at the workdir written into one freshly grown memory page.

function leb(data, pos) {
  let result = 0, shift = 0;
  for (;;) {
    if (pos >= data.length || shift > 35) throw new Error("truncated module");
    const byte = data[pos++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [result, pos];
  }
}

function sleb(data, pos) {
  let result = 0, shift = 0;
  for (;;) {
    if (pos >= data.length || shift > 35) return [NaN, pos];
    const byte = data[pos++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) {
      if (byte & 0x40) result -= 2 ** shift;
      return [result, pos];
    }
  }
}

function sections(wasm) {
  const found = new Map();
  let pos = 8;
  while (pos < wasm.length) {
    const id = wasm[pos];
    let size;
    [size, pos] = leb(wasm, pos + 1);
    if (id) found.set(id, [pos, pos + size]);
    pos += size;
  }
  return found;
}

/** The initial linear memory, from the active data segments with constant offsets. */
function memoryImage(wasm, start) {
  let [count, pos] = leb(wasm, start);
  const segments = [];
  for (let n = 0; n < count; n++) {
    let flag, size, offset;
    [flag, pos] = leb(wasm, pos);
    if (flag === 1) { [size, pos] = leb(wasm, pos); pos += size; continue; }
    if (flag === 2) [, pos] = leb(wasm, pos);
    if (wasm[pos] !== 0x41) return null;
    [offset, pos] = sleb(wasm, pos + 1);
    pos += 1;
    [size, pos] = leb(wasm, pos);
    segments.push([offset, wasm.subarray(pos, pos + size)]);
    pos += size;
  }
  if (!segments.length) return null;
  const memory = new Uint8Array(Math.ceil(Math.max(...segments.map(([o, d]) => o + d.length)) / 4) * 4);
  for (const [offset, data] of segments) memory.set(data, offset);
  return memory;
}

/** The address of wasi-libc's `__wasilibc_cwd` in the module bytes, or null. */
export function findCwdSlot(wasm) {
  try {
    const found = sections(wasm);
    if (!found.has(11) || !found.has(10)) return null;
    const memory = memoryImage(wasm, found.get(11)[0]);
    if (!memory) return null;
    const slashes = new Set();
    for (let i = 0; i + 1 < memory.length; i++) if (memory[i] === 0x2f && memory[i + 1] === 0) slashes.add(i);
    const words = new DataView(memory.buffer);
    const candidates = new Set();
    for (let a = 0; a < memory.length; a += 4) if (slashes.has(words.getUint32(a, true))) candidates.add(a);
    if (!candidates.size) return null;
    // Which candidates does code load by address? One pass over the code section.
    const [start, end] = found.get(10);
    const referenced = new Set();
    // `i32.const addr`, or `i32.const 0` then a load or store (0x28-0x3e, alignment 0-3) with
    // `offset=addr` (how a ThinLTO build names it); either LEB may be padded to 5 bytes.
    for (let i = start; i < end; i++) {
      if (wasm[i] !== 0x41) continue;
      const [value, next] = sleb(wasm, i + 1);
      if (candidates.has(value)) referenced.add(value);
      else if (value === 0 && wasm[next] >= 0x28 && wasm[next] <= 0x3e && wasm[next + 1] <= 3) {
        const [offset] = leb(wasm, next + 2);
        if (candidates.has(offset)) referenced.add(offset);
      }
    }
    return referenced.size === 1 ? [...referenced][0] : null;
  } catch {
    return null;
  }
}

/** Point the guest's current directory at `directory` (call before `_start`). */
export function setCwd(memory, slot, directory) {
  const bytes = new TextEncoder().encode(directory + "\0");
  if (bytes.length > 65536) throw new Error("working directory path too long");
  const address = memory.grow(1) * 65536;
  new Uint8Array(memory.buffer).set(bytes, address);
  new DataView(memory.buffer).setUint32(slot, address, true);
}
