"""Line editing for `boxer run -it`: a guest reading a terminal gets whole lines, edited and
recalled on the host side, as a REPL built with readline offers (the WebAssembly CPython has
no readline: Up-arrow reached it as ESC [ A, a SyntaxError).

The guest's stdin stays this process's terminal (so its isatty() is true), but its reads of
descriptor 0 come here instead of Wasmtime's: `fd_read` is replaced in the linker used for
such runs, and a read of stdin while a run on this thread has an editor asks the editor for
a line (reads of every other descriptor go to Wasmtime's own fd_read). The editor reads keys
with the terminal out of canonical mode and without echo, draws the line itself, and puts
the terminal back before it returns, so the guest's output is written as ever. Ctrl-C while
editing drops the line and gives the guest EINTR, as a signal would (CPython then checks for
a KeyboardInterrupt, see interrupt.py); Ctrl-D on an empty line is end of file.

Keys: printable text, Backspace, Delete, Left/Right, Home/End (and Ctrl-A/Ctrl-E), Up/Down
through this run's history, Ctrl-K/Ctrl-U (cut to end/start), Ctrl-W (cut a word), Tab
(four spaces), Enter. Lines longer than the terminal is wide are not redrawn well.
"""
from __future__ import annotations

import codecs
import os
import select
import struct
import termios
import threading
from collections.abc import Callable

import wasmtime

from boxer_py.runtime import reactor
from boxer_py.runtime.wasi import clock

WASI = "wasi_snapshot_preview1"
SUCCESS, FAULT, INTR = 0, 21, 27
MAX_HISTORY = 1000
KEYS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left", "\x1b[H": "home", "\x1b[F": "end",
        "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left", "\x1bOH": "home", "\x1bOF": "end",
        "\x1b[1~": "home", "\x1b[4~": "end", "\x1b[3~": "delete", "\x01": "home", "\x05": "end", "\x02": "left",
        "\x06": "right", "\x10": "up", "\x0e": "down", "\x7f": "backspace", "\x08": "backspace", "\x0b": "kill-end",
        "\x15": "kill-start", "\x17": "kill-word", "\x04": "eof", "\x03": "interrupt", "\r": "enter", "\n": "enter",
        "\t": "tab"}


class Interrupted(Exception):
    """Ctrl-C while a line was being edited."""


class LineEditor:
    """Reads edited lines from terminal `fd` (drawing on it), with one history per run."""

    def __init__(self, fd: int, interrupted: Callable[[], bool] = lambda: False):
        self.fd = fd
        self.interrupted = interrupted  # polled while waiting for a key (a SIGINT came)
        self.history: list[str] = []
        self.pending = b""  # what the guest has not read yet of the last line

    def read(self, size: int) -> bytes:
        """Up to `size` bytes of the next line (b"" at end of file); raises Interrupted."""
        if not self.pending:
            self.pending = self.read_line()
            if not self.pending:
                return b""
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def read_line(self) -> bytes:
        before = termios.tcgetattr(self.fd)
        mode = list(before)
        mode[0] &= ~(termios.ICRNL | termios.IXON)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)  # ISIG stays: Ctrl-C is a signal
        mode[6] = list(mode[6])
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        try:
            return self._edit()
        finally:
            termios.tcsetattr(self.fd, termios.TCSANOW, before)

    def _edit(self) -> bytes:
        line: list[str] = []
        pos = 0
        recalled = len(self.history)
        draft = ""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            key = self._key(decoder)
            if key is None:  # end of the terminal itself
                return b""
            shown = pos
            action = KEYS.get(key)
            if action == "interrupt" or key == "":
                self._write(_right(len(line) - pos) + "^C")  # as a terminal echoes it; CPython adds the newline
                raise Interrupted()
            if action == "enter":
                self._write(_right(len(line) - pos) + "\r\n")
                text = "".join(line)
                if text.strip() and (not self.history or self.history[-1] != text):
                    self.history = [*self.history, text][-MAX_HISTORY:]
                return (text + "\n").encode("utf-8", "surrogateescape")
            if action == "eof":
                if not line:
                    return b""
                action = "delete"
            if action in ("up", "down"):
                if recalled == len(self.history):
                    draft = "".join(line)
                recalled = max(0, recalled - 1) if action == "up" else min(len(self.history), recalled + 1)
                line = list(self.history[recalled] if recalled < len(self.history) else draft)
                pos = len(line)
            elif action == "left":
                pos = max(0, pos - 1)
            elif action == "right":
                pos = min(len(line), pos + 1)
            elif action == "home":
                pos = 0
            elif action == "end":
                pos = len(line)
            elif action == "backspace" and pos:
                del line[pos - 1]
                pos -= 1
            elif action == "delete" and pos < len(line):
                del line[pos]
            elif action == "kill-end":
                del line[pos:]
            elif action == "kill-start":
                del line[:pos]
                pos = 0
            elif action == "kill-word":
                start = pos
                while start and line[start - 1] == " ":
                    start -= 1
                while start and line[start - 1] != " ":
                    start -= 1
                del line[start:pos]
                pos = start
            elif action == "tab":
                line[pos:pos] = "    "
                pos += 4
            elif action is None and key.isprintable():
                line[pos:pos] = key
                pos += len(key)
                if pos == len(line):  # typed at the end: nothing to redraw
                    self._write(key)
                    continue
            self._draw(line, shown, pos)

    def _draw(self, line: list[str], shown: int, pos: int) -> None:
        """Redraw from where the line starts (the cursor was `shown` characters into it)."""
        self._write(_left(shown) + "".join(line) + "\x1b[K" + _left(len(line) - pos))

    def _key(self, decoder: codecs.IncrementalDecoder) -> str | None:
        """One key: a character, or an escape sequence whole. "" when interrupted."""
        data = self._byte()
        if data is None:
            return ""
        if data == b"\x1b":
            seq = b"\x1b"
            while self._ready(0.05):
                more = os.read(self.fd, 1)
                if not more:
                    break
                seq += more
                if len(seq) >= 3 and (more.isalpha() or more == b"~"):
                    break
            return seq.decode("ascii", "replace")
        if not data:
            return None
        text = decoder.decode(data)
        while not text:  # the rest of a UTF-8 character
            more = os.read(self.fd, 1)
            if not more:
                return None
            text = decoder.decode(more)
        return text

    def _byte(self) -> bytes | None:
        """The next byte; None once an interrupt came while waiting."""
        while not self._ready(0.05):
            if self.interrupted():
                return None
        return os.read(self.fd, 1)

    def _ready(self, timeout: float) -> bool:
        try:
            return bool(select.select([self.fd], [], [], timeout)[0])
        except InterruptedError:
            return False

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data):]


def _left(n: int) -> str:
    return f"\x1b[{n}D" if n > 0 else ""


def _right(n: int) -> str:
    return f"\x1b[{n}C" if n > 0 else ""


def editor(wanted: bool, interrupt: threading.Event | None) -> LineEditor | None:
    """The line editor of a run that asked for one (-it, stdin passed) on a terminal."""
    return LineEditor(0, interrupt.is_set) if wanted and interrupt is not None and os.isatty(0) else None


class Terminals:
    """The editor of the run executing on each thread (None: stdin reads go to Wasmtime), and
    Wasmtime's own fd_read for that run's store."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._linker: wasmtime.Linker | None = None
        self._trampolines: dict[wasmtime.Engine, wasmtime.Module] = {}
        self._lock = threading.Lock()

    def linker(self, engine: wasmtime.Engine, deadlines: clock.Deadlines) -> wasmtime.Linker:
        """The linker for runs with an editor (made once; see `linker` below)."""
        with self._lock:
            if self._linker is None:
                self._linker = linker(engine, deadlines, self)
            return self._linker

    def fd_read(self, engine: wasmtime.Engine, store: wasmtime.Store,
                memory: wasmtime.Memory | None) -> wasmtime.Func | None:
        """Wasmtime's own fd_read for a run's store (see plain_fd_read)."""
        with self._lock:
            return plain_fd_read(engine, store, memory, self._trampolines)

    def set(self, editor: LineEditor | None, original: wasmtime.Func | None = None,
            on_interrupt: Callable[[wasmtime.Caller], object] | None = None) -> None:
        self._local.editor, self._local.original, self._local.on_interrupt = editor, original, on_interrupt

    def get(self) -> tuple[LineEditor | None, wasmtime.Func | None, Callable[[wasmtime.Caller], object] | None]:
        return (getattr(self._local, "editor", None), getattr(self._local, "original", None),
                getattr(self._local, "on_interrupt", None))


def define(linker: wasmtime.Linker, terminals: Terminals) -> None:
    """Replace `fd_read` in a linker that already has the rest of WASI (see the module's doc)."""
    i32 = wasmtime.ValType.i32()

    def fd_read(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nread: int) -> int:
        editor, original, on_interrupt = terminals.get()
        if original is None:
            return FAULT
        if fd != 0 or editor is None:
            result = original(caller, fd, iovs, count, nread)
            return result if isinstance(result, int) else FAULT
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory) or not 0 <= count <= 1024:
            return FAULT
        try:
            vectors = [struct.unpack_from("<II", memory.read(caller, iovs + 8 * i, iovs + 8 * i + 8))
                       for i in range(count)]
            room = sum(length for _, length in vectors)
            try:
                data = editor.read(room) if room else b""
            except Interrupted:
                if on_interrupt is not None:
                    on_interrupt(caller)
                return INTR
            done = 0
            for base, length in vectors:
                chunk = data[done:done + length]
                if not chunk:
                    break
                memory.write(caller, chunk, base)
                done += len(chunk)
            memory.write(caller, struct.pack("<I", done), nread)
        except (ValueError, IndexError, wasmtime.WasmtimeError):
            return FAULT
        return SUCCESS

    linker.allow_shadowing = True
    linker.define_func(WASI, "fd_read", wasmtime.FuncType([i32] * 4, [i32]), fd_read, access_caller=True)
    linker.allow_shadowing = False


def linker(engine: wasmtime.Engine, deadlines: clock.Deadlines, terminals: Terminals) -> wasmtime.Linker:
    """A launcher's linker (WASI, boxer's clocks, reactors' host) but for fd_read, which hands
    reads of stdin to the line editor."""
    made = wasmtime.Linker(engine)
    made.define_wasi()
    clock.define(made, deadlines)
    reactor.define_host(made, engine)
    define(made, terminals)
    return made


TRAMPOLINE = f"""(module
  (import "{WASI}" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory 0))
  (export "memory" (memory 0))
  (func (export "fd_read") (param i32 i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $fd_read))"""


def plain_fd_read(engine: wasmtime.Engine, store: wasmtime.Store, memory: wasmtime.Memory | None,
                  trampolines: dict[wasmtime.Engine, wasmtime.Module]) -> wasmtime.Func | None:
    """Wasmtime's own fd_read for `store` (what the editor's fd_read calls for other reads),
    through a trampoline that exports the guest's memory: Wasmtime's WASI reads the calling
    instance's memory, so called from Python directly it fails ("missing required memory
    export"). `trampolines` keeps the compiled trampoline per engine."""
    if memory is None:
        return None
    plain = wasmtime.Linker(engine)
    plain.define_wasi()
    found = plain.get(store, WASI, "fd_read")
    if not isinstance(found, wasmtime.Func):
        return None
    module = trampolines.get(engine)
    if module is None:
        module = trampolines[engine] = wasmtime.Module(engine, bytes(wasmtime.wat2wasm(TRAMPOLINE)))
    forward = wasmtime.Instance(store, module, [found, memory]).exports(store)["fd_read"]
    return forward if isinstance(forward, wasmtime.Func) else None
