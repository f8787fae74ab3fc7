// Starting a WASI program in its WORKDIR, as src/boxer_py/image/cwdslot.py finds it and
// runtime/wasi/cwd.py sets it: wasi-libc keeps the current directory in the guest global
// `__wasilibc_cwd` (a pointer to "/"); find that data word (the one pointing at "/\0" that code
// names by address: `i32.const addr`, or `i32.const 0` + a load/store with `offset=addr`, either
// LEB minimal or padded to 5 bytes as wasm-ld leaves it), and before `_start` point it at the
// workdir written into one freshly grown memory page. The same rules as cwdslot.py, so the page
// starts in WORKDIR wherever `boxer run` does (zig cc's C programs, the ThinLTO CPython 3.13).

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
  // As cwdslot.py: a layout far sparser than a linker makes is not looked into, nor allocated for.
  const end = Math.max(...segments.map(([o, d]) => o + d.length));
  if (Math.min(...segments.map(([o]) => o)) < 0 || end > (16 << 20) + 4 * segments.reduce((n, [, d]) => n + d.length, 0)) {
    return null;
  }
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
    const pointers = [];
    for (let a = 0; a + 4 <= memory.length; a += 4) if (slashes.has(words.getUint32(a, true))) pointers.push(a);
    if (!pointers.length) return null;
    const candidates = new Set(pointers);
    // Which candidates does code name by address? One pass over the code section.
    const [start, end] = found.get(10);
    const referenced = new Set();
    // `i32.const addr`, or `i32.const 0` then a load or store (0x28-0x3e, alignment 0-3) with
    // `offset=addr` (how a ThinLTO build names it); either LEB may be padded to 5 bytes.
    for (let i = start; i < end; i++) {
      if (wasm[i] !== 0x41) continue;
      const [value, next] = sleb(wasm, i + 1);
      if (candidates.has(value)) referenced.add(value);
      if (value === 0 && next - i - 1 <= 5 && wasm[next] >= 0x28 && wasm[next] <= 0x3e && wasm[next + 1] <= 3) {
        const [offset, after] = leb(wasm, next + 2);
        if (after - next - 2 <= 5 && candidates.has(offset)) referenced.add(offset);
      }
    }
    // A pre-initialised memory also points at wide strings ("/usr..." in UTF-32 reads as "/\0"):
    // a C string "/" is looked for first.
    const wide = new Set(pointers.filter((a) => {
      const target = words.getUint32(a, true);
      return memory[target + 2] === 0 && memory[target + 3] === 0;
    }));
    for (const group of [pointers.filter((a) => !wide.has(a)), pointers]) {
      const hits = group.filter((a) => referenced.has(a));
      if (hits.length) return hits.length === 1 ? hits[0] : null;
    }
    return null;
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
