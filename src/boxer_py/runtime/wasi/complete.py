"""Tab completion for `boxer run -it IMAGE python` (used by terminal.py's line editor).

The editor runs on the host and cannot see the REPL's namespace, and WASI has no threads or
signals to ask the guest on the side. So when Tab needs candidates at the REPL's primary
prompt, the editor answers the guest's pending read of stdin with one private line (`query`):
a call of `exec` that asks `rlcompleter` in `__main__`'s namespace, as CPython's readline REPL
does, and writes the answer marked with a fresh nonce to descriptor 1. Until the guest next
reads stdin, the editor captures everything it writes to descriptors 1 and 2 (that answer,
then the prompt the REPL prints), so the user sees nothing of the exchange, and then goes on
editing the same line. The call evaluates to None (so `_` is kept), the line never enters
the history, and any exception is swallowed in the guest (or, if raised before the `try`,
printed into the capture). Whatever comes back is treated as hostile: the capture is bounded
(`MAX_REPLY`), the reply parsed with limits (`parse`), each candidate printable, bounded and
a completion of the word typed.
"""
from __future__ import annotations

import json
import os
import posixpath
import secrets
from dataclasses import dataclass, field

MAX_REPLY = 64 * 1024  # bytes captured during one exchange; past that it is abandoned
MAX_MATCHES = 1000  # candidates the guest sends (the count of all is sent too)
MAX_MATCH = 200  # characters of one candidate
QUERY_ITEMS = 100  # readline's completion-query-items: more asks before listing
# readline's word breaks as CPython's readline module sets them
DELIMITERS = frozenset(" \t\n`~!@#$%^&*()-=+[{]}\\|;:'\",<>/?")
PRIMARY = b">>> "  # the REPL's prompt (sys.ps1), written to stderr before it reads a statement
# Options of CPython that take a value (the next argument)
VALUED = ("-W", "-X", "--check-hash-based-pycs")

# Run by the guest's REPL (with W, N and B set): its own rlcompleter's candidates, else (the
# 3.12 runtime's stdlib has no rlcompleter) the same rules done here: keywords, the names of
# __main__ and builtins, attributes after a dot; callables get "(", or "()" if they take
# no arguments.
GUEST = r"""
def rules(text, ns):
    import builtins, keyword, re
    def called(value, word):
        if not callable(value):
            return word
        try:
            import inspect
            return word + ("()" if not inspect.signature(value).parameters else "(")
        except (ValueError, TypeError):
            return word + "("
    if "." not in text:
        found, seen = [], {"__builtins__"}
        for word in keyword.kwlist + getattr(keyword, "softkwlist", []):
            if word.startswith(text):
                seen.add(word)
                bare = word in ("False", "None", "True", "break", "continue", "pass", "else", "_")
                found.append(word + (":" if word in ("finally", "try") else "" if bare else " "))
        for space in (ns, builtins.__dict__):
            for word, value in list(space.items()):
                if word.startswith(text) and word not in seen:
                    seen.add(word)
                    found.append(called(value, word))
        return found
    dotted = re.match(r"(\w+(\.\w+)*)\.(\w*)", text)
    if not dotted:
        return []
    expr, attr = dotted.group(1, 3)
    try:
        thing = eval(expr, ns)
    except Exception:
        return []
    names = set(dir(thing)) - {"__builtins__"}
    if hasattr(thing, "__class__"):
        names.add("__class__")
        klasses = [thing.__class__]
        while klasses:
            klass = klasses.pop()
            names.update(dir(klass))
            klasses.extend(getattr(klass, "__bases__", ()))
    for hidden in (["_", "__", None] if not attr else ["__", None] if attr == "_" else [None]):
        found = []
        for word in names:
            if word.startswith(attr) and not (hidden and word.startswith(hidden)):
                match = expr + "." + word
                if isinstance(getattr(type(thing), word, None), property):
                    found.append(match)
                else:
                    value = getattr(thing, word, None)
                    found.append(match if value is None else called(value, match))
        if found:
            return found
    return []
try:
    import os, json, __main__
    try:
        import rlcompleter
    except ImportError:
        m = rules(W, __main__.__dict__)
    else:
        c = rlcompleter.Completer(__main__.__dict__)
        c.complete(W, 0)
        m = c.matches
    m = sorted(set(m))
    os.write(1, B + json.dumps([len(m), os.path.commonprefix(m), m[:N]]).encode() + B)
except BaseException:
    pass
"""


def is_repl(argv: list[str]) -> bool:
    """Whether `argv` starts CPython's interactive loop on a terminal: no script, `-c` or
    `-m` (or `-` for the script, or `-i`). A reactor's prelude (reactor.with_pythonpath:
    `python -c LINE ARGS...`) is looked through."""
    if not argv or not posixpath.basename(argv[0]).startswith("python"):
        return False
    args = argv[1:]
    if len(args) >= 2 and args[0] == "-c" and "__import__('_reactor').run(" in args[1]:
        args = args[2:]
    interactive = False  # -i: the loop comes after the script or command
    it = iter(args)
    for arg in it:
        if arg in VALUED:
            next(it, None)
        elif arg == "--":
            script = next(it, None)
            return script is None or script == "-" or interactive
        elif arg == "-":
            return True
        elif not arg.startswith("-"):
            return interactive
        elif not arg.startswith("--"):
            for flag in arg[1:]:
                if flag in "WX":  # its value is the rest of the argument
                    break
                if flag in "cm":
                    return interactive
                interactive |= flag == "i"
    return True


def word_start(line: list[str], pos: int) -> int:
    """Where the word before `pos` starts, as readline splits words for completion."""
    start = pos
    while start and line[start - 1] not in DELIMITERS:
        start -= 1
    return start


@dataclass
class Exchange:
    """One question to the guest: the line being edited, kept until the answer is in."""

    line: list[str]
    pos: int
    start: int  # where the word being completed starts
    nonce: bytes = field(default_factory=lambda: secrets.token_hex(16).encode())
    captured: bytearray = field(default_factory=bytearray)
    overflowed: bool = False

    @property
    def word(self) -> str:
        return "".join(self.line[self.start:self.pos])

    def query(self) -> bytes:
        """The private line the guest's REPL executes."""
        marker = b"\x1eboxer-complete:" + self.nonce + b":"
        code = f"W={self.word!r};N={MAX_MATCHES};B={marker!r}\n{GUEST}"
        return f"exec({code!r},{{}})\n".encode("utf-8", "surrogateescape")

    def capture(self, data: bytes) -> bool:
        """Keep what the guest wrote; False once more than MAX_REPLY came (the exchange is off)."""
        if not self.overflowed and len(self.captured) + len(data) <= MAX_REPLY:
            self.captured += data
            return True
        self.overflowed = True
        self.captured = bytearray()
        return False

    def answer(self) -> Matches | None:
        """The guest's candidates for the word; None if it gave no valid answer."""
        return None if self.overflowed else parse(bytes(self.captured), self.nonce, self.word)


@dataclass(frozen=True)
class Matches:
    count: int  # how many the guest found (more than `shown` when cut at MAX_MATCHES)
    prefix: str  # the longest common prefix of them all
    shown: tuple[str, ...]


def parse(captured: bytes, nonce: bytes, word: str) -> Matches | None:
    """The reply marked with `nonce` in `captured`, checked: a count, a common prefix and at
    most MAX_MATCHES candidates, each a printable completion of `word` of at most MAX_MATCH
    characters (others are dropped)."""
    marker = b"\x1eboxer-complete:" + nonce + b":"
    begin = captured.find(marker)
    if begin < 0:
        return None
    end = captured.find(b"\x1e", begin + len(marker))
    if end < 0:
        return None
    try:
        reply = json.loads(captured[begin + len(marker):end].decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not (isinstance(reply, list) and len(reply) == 3 and isinstance(reply[0], int)
            and isinstance(reply[1], str) and isinstance(reply[2], list)):
        return None
    shown = tuple(m for m in reply[2][:MAX_MATCHES] if _fits(m, word))
    prefix = reply[1] if _fits(reply[1], word) else word
    if len(shown) == 1:
        prefix = shown[0]
    return Matches(max(len(shown), min(reply[0], 10**9)), os.path.commonprefix([prefix, *shown]) if shown else prefix,
                   shown)


def _fits(match: object, word: str) -> bool:
    return isinstance(match, str) and len(match) <= MAX_MATCH and match.startswith(word) and match.isprintable()


def columns(matches: tuple[str, ...], width: int) -> list[str]:
    """The candidates in columns across a terminal `width` wide, sorted down each column, as
    readline lists them."""
    longest = max(len(m) for m in matches) + 2
    per_row = max(1, (width - 1) // longest)
    rows = -(-len(matches) // per_row)
    lines = []
    for row in range(rows):
        cells = [matches[i] for i in range(row, len(matches), rows)]
        lines.append("".join(cell.ljust(longest) for cell in cells[:-1]) + cells[-1])
    return lines
