"""`sed` for the RUN shell: the s, d, p, a, i and c commands with addresses. Its regular
expressions are regex.Regex (POSIX basic or extended, matched without runaway backtracking);
files are read through limits.read_file and the output is bounded while it grows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from boxer_py.shell import limits
from boxer_py.shell.parse import ShellError
from boxer_py.shell.regex import Regex
from boxer_py.shell.utilities.core import (
    Call,
    Failure,
    Utility,
    decode,
    leading,
    read_inputs,
    unescape,
)


def sed(call: Call) -> int:
    scripts, operands, in_place, extended, quiet = [], [], False, False, False
    args = list(call.args)
    while args:
        a = args.pop(0)
        if a == "--":
            operands += args
            break
        if a.startswith("-i") or a.startswith("--in-place"):
            in_place = True
        elif a in ("-e", "--expression"):
            if not args:
                raise ShellError("sed: option '-e' needs a value")
            scripts.append(args.pop(0))
        elif a.startswith("--expression="):
            scripts.append(a.partition("=")[2])
        elif a in ("-E", "-r", "--regexp-extended"):
            extended = True
        elif a in ("-n", "--quiet", "--silent"):
            quiet = True
        elif re.fullmatch(r"-[Ernis]+", a) and "i" not in a[2:]:
            extended = extended or "E" in a or "r" in a
            quiet = quiet or "n" in a
            in_place = in_place or "i" in a
        elif a.startswith("-") and a != "-":
            raise ShellError(f"sed: unsupported option '{a}'")
        else:
            operands.append(a)
    if not scripts:
        if not operands:
            return call.fail("no script given", 1)
        scripts.append(operands.pop(0))
    commands = [c for s in scripts for c in _sed_parse(s, extended)]
    if in_place:
        if not operands:
            return call.fail("no input files")
        status = 0
        for name in operands:
            try:
                host = call.host(name)
                data = limits.read_file(host)
            except (Failure, OSError):
                status = call.fail(f"can't read {name}: No such file or directory", 2)
                continue
            host.write_bytes(_sed_apply(commands, data, quiet))
        return status
    found, status = read_inputs(call, operands)
    call.out(_sed_apply(commands, b"".join(d for _, d in found), quiet))
    return status


@dataclass
class _SedCommand:
    address: Regex | int | str | None        # a regex, a line number, '$' or every line
    verb: str                                # 's', 'd', 'p', or 'a' / 'i' / 'c' with text
    pattern: Regex | None = None             # the s command's regex
    replacement: str = ""
    count: int = 1                           # 0 = every match (the g flag)
    print_: bool = False


def _sed_split(text: str, i: int, delim: str) -> tuple[str, int]:
    out = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1] if text[i + 1] == delim else text[i:i + 2])
            i += 2
            continue
        if c == delim:
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise ShellError(f"sed: unterminated expression in '{text}'")


def _sed_parse(script: str, extended: bool) -> list[_SedCommand]:
    commands, i = [], 0
    while i < len(script):
        while i < len(script) and script[i] in " \t\n;":
            i += 1
        if i >= len(script):
            break
        address: Regex | int | str | None = None
        if script[i] == "/":
            text, i = _sed_split(script, i + 1, "/")
            address = Regex(text, extended)
        elif script[i].isdigit():
            digits = leading(r"\d+", script[i:])
            address, i = int(digits), i + len(digits)
        elif script[i] == "$":
            address, i = "$", i + 1
        verb = script[i] if i < len(script) else ""
        if verb == "s":
            delim = script[i + 1] if i + 1 < len(script) else ""
            if not delim or delim in "\\\n":
                raise ShellError(f"sed: bad s command in '{script}'")
            pattern, i = _sed_split(script, i + 2, delim)
            replacement, i = _sed_split(script, i, delim)
            flags = leading(r"[gIip0-9]*", script[i:])
            i += len(flags)
            count = 0 if "g" in flags else int(re.sub(r"\D", "", flags) or 1)
            regex = Regex(pattern, extended, "I" in flags or "i" in flags)
            refs = [int(d) for d in re.findall(r"(?<!\\)(?:\\\\)*\\([0-9])", replacement)]
            if refs and max(refs) > regex.groups:
                raise ShellError(f"sed: invalid reference \\{max(refs)} on s command's RHS in '{script}'")
            commands.append(_SedCommand(address, "s", regex, replacement, count, "p" in flags))
        elif verb in ("a", "i", "c"):
            # GNU one-liner `a text` or POSIX `a\` + newline + text; the text runs to the end of line
            start = i + 1 + len(leading(r"[ \t]*(?:\\\n?)?[ \t]*", script[i + 1:]))
            end = script.find("\n", start)
            end = len(script) if end < 0 else end
            commands.append(_SedCommand(address, verb, replacement=unescape(script[start:end], False)[0]))
            i = end
            continue
        elif verb in ("d", "p"):
            commands.append(_SedCommand(address, verb))
            i += 1
        else:
            raise ShellError(f"sed: only the s, d, p, a, i and c commands are supported, not '{script[i:i + 20]}'")
        while i < len(script) and script[i] in " \t":
            i += 1
        if i < len(script) and script[i] not in ";\n":
            raise ShellError(f"sed: unexpected '{script[i]}' in '{script}'")
    return commands


def _sed_replace(template: str, m) -> str:
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "\\" and i + 1 < len(template):
            nxt = template[i + 1]
            if nxt.isdigit():
                out.append(m.group(int(nxt)) or "")
            else:
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        out.append(m.group(0) if c == "&" else c)
        i += 1
    return "".join(out)


def _substitute(c: _SedCommand, body: str) -> str:
    """`s/pattern/replacement/N`: replace the N-th match, or every match when N is 0 (the g flag)."""
    done = 0

    made = 0

    def replace(m) -> str:
        nonlocal done, made
        done += 1
        if c.count and done != c.count:
            return m.group(0)
        text = _sed_replace(c.replacement, m)
        made += len(text)
        limits.check_stream(made, "sed's output")   # `s/./&&&&&&&&/g` multiplies a line
        return text

    assert c.pattern is not None
    return c.pattern.sub(replace, body, c.count)


def _sed_apply(commands: list[_SedCommand], data: bytes, quiet: bool) -> bytes:
    lines = limits.split_lines(decode(data), keepends=True)
    out = limits.Collector("sed's output")
    for number, line in enumerate(lines, 1):
        body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        deleted, appended = False, []
        for c in commands:
            if isinstance(c.address, Regex) and c.address.search(body) is None:
                continue
            if isinstance(c.address, int) and c.address != number:
                continue
            if c.address == "$" and number != len(lines):
                continue
            if c.verb == "d":
                deleted = True
                break
            if c.verb == "i":
                out.add(c.replacement + "\n")
            elif c.verb == "a":
                appended.append(c.replacement + "\n")
            elif c.verb == "c":
                out.add(c.replacement + "\n")
                deleted = True
                break
            elif c.verb == "p":
                out.add(body + end)
            elif c.verb == "s":
                new = _substitute(c, body)
                limits.check_stream(out.size + len(new), "sed's output")
                if new != body and c.print_:
                    out.add(new + end)
                body = new
        if not deleted and not quiet:
            out.add(body + (end or ("\n" if appended else "")))
        for text in appended:
            out.add(text)
    return out.text().encode("utf-8", "surrogateescape")


UTILITIES: dict[str, Utility] = {"sed": sed}
