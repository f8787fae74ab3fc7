// The site's stripped copy of the image's default program (see src/boxer_py/browser/runtime.py):
// compiled with compileStreaming as soon as the page opens, while the image downloads, from a
// URL named by its digest that a host may cache for good (so Chromium keeps its compiled code
// between visits). A run uses it only for a program whose sha256 is the one the page names;
// anything else, or a runtime that fails to load, is compiled from the image's own bytes.

import { sha256 } from "./image.js";

export class Runtime {
  constructor(dataset) {
    this.programDigest = dataset.runtimeProgram || null;
    this.cwdSlot = /^\d+$/.test(dataset.runtimeCwdSlot || "") ? Number(dataset.runtimeCwdSlot) : null;
    this.compiling = null;
    if (dataset.runtime && this.programDigest) {
      this.compiling = WebAssembly.compileStreaming(fetch(dataset.runtime));
      this.compiling.catch(() => {}); // a failure is handled where it is used
    }
  }

  /** {module, cwdSlot} for a program with these bytes, or null (compile it from the image). */
  async moduleFor(bytes) {
    if (!this.compiling || (await sha256(bytes)) !== this.programDigest) return null;
    try {
      return { module: await this.compiling, cwdSlot: this.cwdSlot };
    } catch {
      return null;
    }
  }
}
