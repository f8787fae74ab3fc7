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
through this run's history, Ctrl-K/Ctrl-U (cut to end/start), Ctrl-W (cut a word), Tab,
Enter. Lines longer than the terminal is wide are not redrawn well.

Tab completes as CPython's readline REPL does (rlcompleter) when the run is CPython's REPL
(complete.is_repl), the cursor follows a word and the REPL's `>>> ` prompt was the last thing
it wrote: the question goes to the guest as a private line (complete.py), so `fd_write` is
replaced too, to capture the answer. Elsewhere (only whitespace before the cursor, a `... `
continuation line, a program that is not the REPL) Tab inserts four spaces.
"""
from __future__ import annotations

import codecs
import os
import select
import struct
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass

import wasmtime

from boxer_py.runtime import reactor
from boxer_py.runtime.wasi import clock
from boxer_py.runtime.wasi.complete import (
    MAX_REPLY,
    PRIMARY,
    QUERY_ITEMS,
    Exchange,
    Matches,
    columns,
    is_repl,
    word_start,
)

WASI = "wasi_snapshot_preview1"
SUCCESS, FAULT, INTR = 0, 21, 27
MAX_HISTORY = 1000
MAX_VECTORS = 1024  # iovecs of one read or write
TAIL = 256  # bytes kept of the guest's last unfinished output line (the prompt)
KEYS = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left", "\x1b[H": "home", "\x1b[F": "end",
        "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left", "\x1bOH": "home", "\x1bOF": "end",
        "\x1b[1~": "home", "\x1b[4~": "end", "\x1b[3~": "delete", "\x01": "home", "\x05": "end", "\x02": "left",
        "\x06": "right", "\x10": "up", "\x0e": "down", "\x7f": "backspace", "\x08": "backspace", "\x0b": "kill-end",
        "\x15": "kill-start", "\x17": "kill-word", "\x04": "eof", "\x03": "interrupt", "\r": "enter", "\n": "enter",
        "\t": "tab"}


class Interrupted(Exception):
    """Ctrl-C while a line was being edited."""


@dataclass
class Forward:
    """Wasmtime's own fd_read and fd_write for a run's store (see plain_calls)."""

    read: wasmtime.Func
    write: wasmtime.Func


class LineEditor:
    """Reads edited lines from terminal `fd` (drawing on it), with one history per run;
    `repl`: the guest is CPython's REPL, so Tab may ask it for completions."""

    def __init__(self, fd: int, interrupted: Callable[[], bool] = lambda: False, repl: bool = False):
        self.fd = fd
        self.interrupted = interrupted  # polled while waiting for a key (a SIGINT came)
        self.repl = repl
        self.history: list[str] = []
        self.pending = b""  # what the guest has not read yet of the last line
        self.exchange: Exchange | None = None  # a completion asked of the guest, not yet answered
        self.kept: tuple[int, str] = (0, "")  # the history position and draft of the line it is for
        self.tail, self.tail_fd = b"", 0  # the guest's output since its last newline, and where it went
        self.mode: list | None = None  # the terminal's own mode while this editor has changed it

    def wrote(self, fd: int, tail: bytes, whole: bool) -> None:
        """The guest wrote to `fd`, ending with `tail` (`whole`: that was all of it)."""
        if b"\n" in tail:
            self.tail = tail[tail.rindex(b"\n") + 1:]
        else:
            self.tail = (self.tail + tail)[-TAIL:] if whole and fd == self.tail_fd else tail[-TAIL:]
        self.tail_fd = fd

    def capturing(self) -> Exchange | None:
        """The exchange whose answer the guest's writes are, if one is under way."""
        return self.exchange if self.exchange is not None and not self.exchange.overflowed else None

    def abandon(self) -> None:
        """The guest wrote more than an answer: its output goes to the terminal again."""
        self._restore()

    def close(self) -> None:
        """Give the terminal its own mode back (the run ended, maybe during an exchange)."""
        self._restore()

    def read(self, size: int) -> bytes:
        """Up to `size` bytes of the next line (b"" at end of file); raises Interrupted."""
        if not self.pending:
            self.pending = self.read_line()
            if not self.pending:
                return b""
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def read_line(self) -> bytes:
        """The next line, with the terminal out of canonical mode meanwhile; during a
        completion exchange it stays so (keys typed then are not echoed by the terminal)."""
        if self.mode is None:
            self.mode = termios.tcgetattr(self.fd)
            mode = list(self.mode)
            mode[0] &= ~(termios.ICRNL | termios.IXON)
            mode[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)  # ISIG stays: Ctrl-C is a signal
            mode[6] = list(mode[6])
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        try:
            line = self._edit()
        except BaseException:
            self.exchange = None
            self._restore()
            raise
        if self.exchange is None:
            self._restore()
        return line

    def _restore(self) -> None:
        if self.mode is not None:
            mode, self.mode = self.mode, None
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    def _edit(self) -> bytes:
        line: list[str] = []
        pos = 0
        recalled = len(self.history)
        draft = ""
        listable: tuple[str, int, Matches] | None = None  # a second Tab here lists these
        if self.exchange is not None:  # the guest has answered (or not): on with the same line
            exchange, self.exchange = self.exchange, None
            (recalled, draft), line, pos = self.kept, exchange.line, exchange.pos
            listable = self._completed(exchange)
            # past the capture's bound the guest's output (and prompt) reached the terminal: the
            # line is drawn again after it
            shown, pos = 0 if exchange.overflowed else pos, exchange.pos
            self._draw(line, shown, pos)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            key = self._key(decoder)
            if key is None:  # end of the terminal itself
                return b""
            shown = pos
            action = KEYS.get(key)
            offered, listable = listable, None
            if action == "interrupt" or key == "":
                self._write(_right(len(line) - pos) + "^C")  # as a terminal echoes it; CPython adds the newline
                raise Interrupted()
            if action == "enter":
                self._write(_right(len(line) - pos) + "\r\n")
                self.tail = b""  # the prompt is done with: a newline follows it
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
            elif action in EDITS:
                pos = _edited(action, line, pos)
            elif action == "tab":
                start = word_start(line, pos)
                if offered is not None and offered[:2] == ("".join(line), pos):  # a second Tab: list them
                    self._list(offered[2], line, pos)
                    continue
                if self._completes(line, start, pos):
                    self.exchange, self.kept = Exchange(line, pos, start), (recalled, draft)
                    return self.exchange.query()
                line[pos:pos] = "    "
                pos += 4
            elif action is None and key.isprintable():
                line[pos:pos] = key
                pos += len(key)
                if pos == len(line):  # typed at the end: nothing to redraw
                    self._write(key)
                    continue
            self._draw(line, shown, pos)

    def _completes(self, line: list[str], start: int, pos: int) -> bool:
        """Whether Tab asks the guest: its REPL waits at the primary prompt, a word is before
        the cursor (not only whitespace, which Tab indents)."""
        return self.repl and start < pos and self.tail_fd == 2 and self.tail.endswith(PRIMARY)

    def _completed(self, exchange: Exchange) -> tuple[str, int, Matches] | None:
        """Put the guest's answer into the line as readline does: one candidate, or the
        longest prefix of several, replaces the word; a bell if nothing was added. Returns
        what a second Tab lists."""
        matches, word, line = exchange.answer(), exchange.word, exchange.line
        if matches is None or not matches.shown:
            self._write("\a")
            return None
        if len(matches.prefix) > len(word):
            line[exchange.start:exchange.pos] = matches.prefix
            exchange.pos = exchange.start + len(matches.prefix)
            return None
        if len(matches.shown) > 1 or matches.count > 1:
            self._write("\a")
        return "".join(line), exchange.pos, matches

    def _list(self, matches: Matches, line: list[str], pos: int) -> None:
        """The candidates below the line, then the prompt and the line again (readline's
        second Tab); past QUERY_ITEMS it asks first."""
        self._write(_right(len(line) - pos) + "\r\n")
        answer = "y"
        if matches.count > QUERY_ITEMS:
            self._write(f"Display all {matches.count} possibilities? (y or n)")
            answer = self._key(codecs.getincrementaldecoder("utf-8")("replace")) or "n"
            self._write("\r\n")
        if answer in ("y", "Y", " "):
            try:
                width = os.get_terminal_size(self.fd).columns
            except OSError:
                width = 80
            self._write("\r\n".join(columns(matches.shown, width)) + "\r\n")
        os.write(self.fd, self.tail)
        self._write("".join(line) + _left(len(line) - pos))

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


EDITS = ("left", "right", "home", "end", "backspace", "delete", "kill-end", "kill-start", "kill-word")


def _edited(action: str, line: list[str], pos: int) -> int:
    """Apply one of EDITS to `line` in place; the cursor's new position."""
    if action in ("left", "right", "home", "end"):
        return {"left": max(0, pos - 1), "right": min(len(line), pos + 1), "home": 0, "end": len(line)}[action]
    if action == "backspace" and pos:
        del line[pos - 1]
        return pos - 1
    if action == "delete" and pos < len(line):
        del line[pos]
    elif action == "kill-end":
        del line[pos:]
    elif action == "kill-start":
        del line[:pos]
        return 0
    elif action == "kill-word":
        start = pos
        while start and line[start - 1] == " ":
            start -= 1
        while start and line[start - 1] != " ":
            start -= 1
        del line[start:pos]
        return start
    return pos


def _left(n: int) -> str:
    return f"\x1b[{n}D" if n > 0 else ""


def _right(n: int) -> str:
    return f"\x1b[{n}C" if n > 0 else ""


def editor(wanted: bool, interrupt: threading.Event | None, argv: list[str]) -> LineEditor | None:
    """The line editor of a run that asked for one (-it, stdin passed) on a terminal."""
    if not wanted or interrupt is None or not os.isatty(0):
        return None
    return LineEditor(0, interrupt.is_set, is_repl(argv))


class Terminals:
    """The editor of the run executing on each thread (None: stdin reads go to Wasmtime), and
    Wasmtime's own fd_read and fd_write for that run's store."""

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

    def plain(self, engine: wasmtime.Engine, store: wasmtime.Store, memory: wasmtime.Memory | None) -> Forward | None:
        """Wasmtime's own fd_read and fd_write for a run's store (see plain_calls)."""
        with self._lock:
            return plain_calls(engine, store, memory, self._trampolines)

    def set(self, editor: LineEditor | None, original: Forward | None = None,
            on_interrupt: Callable[[wasmtime.Caller], object] | None = None) -> None:
        """The run on this thread now has `editor` (None: it ended; the last one's terminal
        gets its mode back)."""
        last = getattr(self._local, "editor", None)
        if last is not None and last is not editor:
            last.close()
        self._local.editor, self._local.original, self._local.on_interrupt = editor, original, on_interrupt

    def get(self) -> tuple[LineEditor | None, Forward | None, Callable[[wasmtime.Caller], object] | None]:
        return (getattr(self._local, "editor", None), getattr(self._local, "original", None),
                getattr(self._local, "on_interrupt", None))


def _vectors(caller: wasmtime.Caller, iovs: int, count: int) -> tuple[wasmtime.Memory, list[tuple[int, int]]]:
    """The guest's memory and its (address, length) vectors; ValueError if out of bounds."""
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory) or not 0 <= count <= MAX_VECTORS:
        raise ValueError("no memory or too many vectors")
    return memory, [struct.unpack_from("<II", memory.read(caller, iovs + 8 * i, iovs + 8 * i + 8))
                    for i in range(count)]


def _tail(caller: wasmtime.Caller, memory: wasmtime.Memory, vectors: list[tuple[int, int]]) -> tuple[bytes, bool]:
    """The last TAIL bytes of what `vectors` hold, and whether that is all of it."""
    tail, total = b"", sum(length for _, length in vectors)
    for base, length in reversed(vectors):
        take = min(length, TAIL - len(tail))
        if take:
            tail = bytes(memory.read(caller, base + length - take, base + length)) + tail
    return tail, len(tail) == total


def define(linker: wasmtime.Linker, terminals: Terminals) -> None:
    """Replace `fd_read` and `fd_write` in a linker that already has the rest of WASI (see the
    module's doc)."""
    i32 = wasmtime.ValType.i32()

    def fd_write(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nwritten: int) -> int:
        editor, original, _ = terminals.get()
        if original is None:
            return FAULT
        if fd not in (1, 2) or editor is None or not editor.repl:
            result = original.write(caller, fd, iovs, count, nwritten)
            return result if isinstance(result, int) else FAULT
        try:
            memory, vectors = _vectors(caller, iovs, count)
            exchange = editor.capturing()
            if exchange is not None:  # the answer to a completion, and the prompt after it
                total = sum(length for _, length in vectors)
                data = b"".join(memory.read(caller, base, base + length) for base, length in vectors) \
                    if total <= MAX_REPLY else b""
                if exchange.capture(data if total <= MAX_REPLY else b"\0" * (MAX_REPLY + 1)):
                    memory.write(caller, struct.pack("<I", total), nwritten)
                    return SUCCESS
                editor.abandon()
            result = original.write(caller, fd, iovs, count, nwritten)
            if result == SUCCESS:
                editor.wrote(fd, *_tail(caller, memory, vectors))
        except (ValueError, IndexError, wasmtime.WasmtimeError):
            return FAULT
        return result if isinstance(result, int) else FAULT

    def fd_read(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nread: int) -> int:
        editor, original, on_interrupt = terminals.get()
        if original is None:
            return FAULT
        if fd != 0 or editor is None:
            result = original.read(caller, fd, iovs, count, nread)
            return result if isinstance(result, int) else FAULT
        try:
            memory, vectors = _vectors(caller, iovs, count)
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
    linker.define_func(WASI, "fd_write", wasmtime.FuncType([i32] * 4, [i32]), fd_write, access_caller=True)
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
  (import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory 0))
  (export "memory" (memory 0))
  (func (export "fd_read") (param i32 i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $fd_read)
  (func (export "fd_write") (param i32 i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $fd_write))"""


def plain_calls(engine: wasmtime.Engine, store: wasmtime.Store, memory: wasmtime.Memory | None,
                trampolines: dict[wasmtime.Engine, wasmtime.Module]) -> Forward | None:
    """Wasmtime's own fd_read and fd_write for `store` (what the editor's calls forward to),
    through a trampoline that exports the guest's memory: Wasmtime's WASI reads the calling
    instance's memory, so called from Python directly it fails ("missing required memory
    export"). `trampolines` keeps the compiled trampoline per engine."""
    if memory is None:
        return None
    plain = wasmtime.Linker(engine)
    plain.define_wasi()
    found = [plain.get(store, WASI, name) for name in ("fd_read", "fd_write")]
    if not all(isinstance(f, wasmtime.Func) for f in found):
        return None
    module = trampolines.get(engine)
    if module is None:
        module = trampolines[engine] = wasmtime.Module(engine, bytes(wasmtime.wat2wasm(TRAMPOLINE)))
    exports = wasmtime.Instance(store, module, [*found, memory]).exports(store)
    read, write = exports["fd_read"], exports["fd_write"]
    return Forward(read, write) if isinstance(read, wasmtime.Func) and isinstance(write, wasmtime.Func) else None
