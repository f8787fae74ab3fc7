// Typing into the terminal, for a run whose stdin is the terminal (ttyin.js): the page edits
// the line (as a terminal in canonical mode, or `boxer run -it`'s line editor, does: the
// WebAssembly CPython has no readline) and hands the guest whole lines.
//
// Keys: printable text, Backspace, Delete, Left/Right, Home/End (and Ctrl-A/Ctrl-E), Up/Down
// through this run's history, Ctrl-U (cut to the start), Enter. Ctrl-D on an empty line is end
// of file. Ctrl-C drops the line being edited and is handed to the page (`onInterrupt`), which
// raises KeyboardInterrupt in a CPython guest (busy or reading) where it can.

import { Feeder } from "./ttyin.js";

const KEYS = {
  "\x1b[D": "left", "\x1b[C": "right", "\x1bOD": "left", "\x1bOC": "right", "\x1b[A": "up", "\x1b[B": "down",
  "\x1bOA": "up", "\x1bOB": "down", "\x1b[H": "home", "\x1b[F": "end", "\x1bOH": "home", "\x1bOF": "end",
  "\x1b[1~": "home", "\x1b[4~": "end", "\x1b[3~": "delete", "\x01": "home", "\x05": "end", "\x7f": "backspace",
  "\x08": "backspace", "\x15": "kill-start", "\x04": "eof", "\x03": "interrupt", "\r": "enter", "\t": "tab",
};
const MAX_HISTORY = 1000;

export class LineConsole {
  /** `terminal`: the xterm Terminal; `buffer`: the run's SharedArrayBuffer channel. */
  constructor(terminal, buffer, onInterrupt = () => false) {
    this.terminal = terminal;
    this.onInterrupt = onInterrupt; // true: the guest gets it (and prints what follows itself)
    this.feeder = new Feeder(buffer);
    this.line = [];
    this.cursor = 0;
    this.history = [];
    this.recall = 0;
    this.lastOutput = ""; // the guest's output since its last newline (a prompt), redrawn after ^C
    this.closed = false;
  }

  /** The guest wrote `text` (to track the prompt a dropped line goes back to). */
  output(text) {
    const nl = text.lastIndexOf("\n");
    this.lastOutput = nl < 0 ? this.lastOutput + text : text.slice(nl + 1);
  }

  /** The worker took what was in the buffer: move in more. */
  taken() { this.feeder.pump(); }

  close() { this.closed = true; }

  /** Keys typed (xterm's onData: one key, or a pasted run of text). */
  input(data) {
    if (this.closed) return;
    for (const [kind, text] of tokens(data)) {
      if (kind === "text") this.insert(text);
      else this[kind.replace("-", "_")]?.();
    }
  }

  insert(text) {
    const chars = [...text].filter((c) => c >= " ");
    this.line.splice(this.cursor, 0, ...chars);
    this.cursor += chars.length;
    this.redraw(this.cursor - chars.length);
  }

  /** Rewrite the line from position `from` on (where the terminal's cursor is), and put the
   *  cursor back at `this.cursor`. */
  redraw(from) {
    let out = this.line.slice(from).join("") + "\x1b[K";
    const after = this.line.length - this.cursor;
    if (after > 0) out += `\x1b[${after}D`;
    this.terminal.write(out);
  }

  move(to) {
    to = Math.max(0, Math.min(this.line.length, to));
    if (to < this.cursor) this.terminal.write(`\x1b[${this.cursor - to}D`);
    if (to > this.cursor) this.terminal.write(`\x1b[${to - this.cursor}C`);
    this.cursor = to;
  }

  left() { this.move(this.cursor - 1); }
  right() { this.move(this.cursor + 1); }
  home() { this.move(0); }
  end() { this.move(this.line.length); }
  tab() { this.insert("    "); }

  backspace() {
    if (!this.cursor) return;
    this.move(this.cursor - 1);
    this.line.splice(this.cursor, 1);
    this.redraw(this.cursor);
  }

  delete() {
    if (this.cursor >= this.line.length) return;
    this.line.splice(this.cursor, 1);
    this.redraw(this.cursor);
  }

  kill_start() {
    const cut = this.cursor;
    this.move(0);
    this.line.splice(0, cut);
    this.redraw(0);
  }

  replace(text) {
    this.move(0);
    this.line = [...text];
    this.cursor = this.line.length;
    this.redraw(0);
  }

  up() {
    if (this.recall === 0) return;
    this.recall -= 1;
    this.replace(this.history[this.recall]);
  }

  down() {
    if (this.recall >= this.history.length) return;
    this.recall += 1;
    this.replace(this.history[this.recall] ?? "");
  }

  enter() {
    const text = this.line.join("");
    this.end();
    this.terminal.write("\r\n");
    if (text.trim() && this.history[this.history.length - 1] !== text) this.history.push(text);
    if (this.history.length > MAX_HISTORY) this.history.shift();
    this.recall = this.history.length;
    this.line = [];
    this.cursor = 0;
    this.lastOutput = "";
    this.feeder.send(new TextEncoder().encode(text + "\n"));
  }

  eof() {
    if (this.line.length) return;
    this.feeder.eof();
  }

  interrupt() {
    this.end();
    this.line = [];
    this.cursor = 0;
    this.recall = this.history.length;
    if (this.onInterrupt()) {
      this.terminal.write("^C");
      this.feeder.interrupt();
    } else {
      this.terminal.write("^C\r\n" + this.lastOutput);
    }
  }
}

/** Split typed data into keys and runs of plain text (a paste may hold several lines). */
function* tokens(data) {
  let i = 0;
  let text = "";
  while (i < data.length) {
    const key = Object.keys(KEYS).find((k) => data.startsWith(k, i));
    if (key || data[i] === "\n") {
      if (text) yield ["text", text];
      text = "";
      yield [key ? KEYS[key] : "enter", ""];
      i += key ? key.length : 1;
    } else if (data[i] === "\x1b") {
      const seq = /^\x1b(\[[0-9;]*[~A-Za-z]|O[A-Za-z]|.)?/.exec(data.slice(i))[0]; // an unknown key: ignored
      i += seq.length;
    } else {
      text += data[i];
      i += 1;
    }
  }
  if (text) yield ["text", text];
}
