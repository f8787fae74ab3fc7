// The terminal as the guest's stdin: the page (console.js) edits a line and hands it over
// through a SharedArrayBuffer; the worker's stdin (`TerminalStdin`) blocks in Atomics.wait
// until a line or an end of file is there. The buffer exists only on a cross-origin isolated
// page (COOP + COEP headers); elsewhere stdin is the form's text, as before.
//
// Layout: four Int32 words, then the bytes. SEQ changes whenever the page puts something in,
// LEN is how many bytes wait in the buffer (only the page sets it above 0, or to REVOKED, only
// the worker back to 0), EOF counts the Ctrl-Ds not yet read (each one read as one end of file),
// INTR is set by a Ctrl-C: the read waiting (or the next one) fails with EINTR, after which
// CPython checks for signals, as `boxer run -it`'s line editor makes it do. A Ctrl-C also drops
// the lines typed before it that the guest has not read, as a terminal flushes its input on
// SIGINT: those queued here, and the one in the buffer (REVOKED), whichever the worker had got to.

import { Fd } from "@bjorn3/browser_wasi_shim";

const SEQ = 0, LEN = 1, EOF = 2, INTR = 3;
const REVOKED = -1;
const ERRNO_INTR = 27;
const HEADER = 16;
export const CAPACITY = 1 << 16;
const FILETYPE_CHARACTER_DEVICE = 2;
const RIGHTS_FD_READ = 2n;

export function makeChannel() {
  return new SharedArrayBuffer(HEADER + CAPACITY);
}

/** The page's end: queue lines and ends of file; `pump()` moves them in as the worker takes them. */
export class Feeder {
  constructor(buffer) {
    this.ctl = new Int32Array(buffer, 0, 4);
    this.data = new Uint8Array(buffer, HEADER, CAPACITY);
    this.queue = []; // Uint8Array chunks, or null for an end of file
  }

  send(bytes) { this.queue.push(bytes); this.pump(); }

  eof() { this.queue.push(null); this.pump(); }

  /** Ctrl-C: what was queued is dropped, and the guest's read is cut short. */
  interrupt() {
    this.queue = [];
    const length = Atomics.load(this.ctl, LEN);
    if (length > 0) Atomics.compareExchange(this.ctl, LEN, length, REVOKED);
    Atomics.store(this.ctl, INTR, 1);
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
  }

  /** Move what is queued into the buffer while the worker has taken all of the last part. */
  pump() {
    while (this.queue.length && Atomics.load(this.ctl, LEN) === 0) {
      const next = this.queue[0];
      if (next === null) {
        if (Atomics.load(this.ctl, EOF) > 0) return; // one end of file at a time, in order
        this.queue.shift();
        Atomics.add(this.ctl, EOF, 1);
      } else {
        const part = next.subarray(0, CAPACITY);
        this.data.set(part);
        if (part.length < next.length) this.queue[0] = next.subarray(part.length);
        else this.queue.shift();
        Atomics.store(this.ctl, LEN, part.length);
      }
      Atomics.add(this.ctl, SEQ, 1);
      Atomics.notify(this.ctl, SEQ);
    }
  }
}

/** fd 0 of a run whose stdin is the terminal: a character device (so isatty(0) is true and
 *  CPython starts its REPL), reads block until the page has a line. `taken()` tells the page
 *  the buffer is free again. */
export class TerminalStdin extends Fd {
  constructor(buffer, taken) {
    super();
    this.ctl = new Int32Array(buffer, 0, 4);
    this.data = new Uint8Array(buffer, HEADER, CAPACITY);
    this.pending = new Uint8Array(0);
    this.taken = taken;
  }

  fd_fdstat_get() {
    return { ret: 0, fdstat: { write_bytes: (view, ptr) => {
      view.setUint8(ptr, FILETYPE_CHARACTER_DEVICE);
      view.setUint16(ptr + 2, 0, true);
      view.setBigUint64(ptr + 8, RIGHTS_FD_READ, true);
      view.setBigUint64(ptr + 16, 0n, true);
    } } };
  }

  fd_filestat_get() {
    return { ret: 0, filestat: { write_bytes: (view, ptr) => {
      for (let i = 0; i < 64; i += 8) view.setBigUint64(ptr + i, 0n, true);
      view.setUint8(ptr + 16, FILETYPE_CHARACTER_DEVICE);
    } } };
  }

  fd_read(size) {
    if (Atomics.exchange(this.ctl, INTR, 0)) {
      this.pending = new Uint8Array(0);
      return { ret: ERRNO_INTR, data: new Uint8Array(0) };
    }
    if (!this.pending.length) {
      for (;;) {
        const seq = Atomics.load(this.ctl, SEQ);
        if (Atomics.exchange(this.ctl, INTR, 0)) return { ret: ERRNO_INTR, data: new Uint8Array(0) };
        const length = Atomics.load(this.ctl, LEN);
        if (length > 0) {
          const line = this.data.slice(0, length);
          const revoked = Atomics.compareExchange(this.ctl, LEN, length, 0) !== length;
          if (revoked) Atomics.store(this.ctl, LEN, 0); // a Ctrl-C came as it was taken: dropped
          this.taken();
          if (revoked) continue;
          this.pending = line;
          break;
        }
        if (length === REVOKED) {
          Atomics.store(this.ctl, LEN, 0);
          this.taken();
          continue;
        }
        if (Atomics.load(this.ctl, EOF) > 0) {
          Atomics.sub(this.ctl, EOF, 1);
          this.taken();
          return { ret: 0, data: new Uint8Array(0) };
        }
        Atomics.wait(this.ctl, SEQ, seq);
      }
    }
    const data = this.pending.slice(0, size);
    this.pending = this.pending.subarray(data.length);
    return { ret: 0, data };
  }
}
