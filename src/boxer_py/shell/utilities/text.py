"""Text utilities of the RUN shell: echo, printf, cat, sed, grep, test, xargs..."""
from __future__ import annotations

import posixpath
import re
import shlex
import stat
from dataclasses import dataclass

from boxer_py.shell.parse import ShellError
from boxer_py.shell.utilities.core import (
    Call,
    Failure,
    Utility,
    decode,
    lookup_path,
    new_file,
    parse_options,
    read_inputs,
    unescape,
)


def echo(call: Call) -> int:
    """dash's echo (Debian's /bin/sh) interprets backslash escapes; -n, -e and -E as in bash."""
    args, newline, escapes = list(call.args), True, True
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for ch in args.pop(0)[1:]:
            newline = newline and ch != "n"
            escapes = True if ch == "e" else (False if ch == "E" else escapes)
    text = " ".join(args)
    if escapes:
        text, stop = unescape(text, octal_needs_zero=True)
        newline = newline and not stop
    call.print(text + ("\n" if newline else ""))
    return 0


_MAX_WIDTH = 1 << 20   # printf '%999999999s' would build a gigabyte string in the builder
_FORMAT = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d*|\*))?([sdiouxXcbfeEgG%])")


def printf(call: Call) -> int:
    if not call.args:
        return call.fail("usage: printf format [arguments]", 2)
    fmt, args = call.args[0], list(call.args[1:])
    status, out = 0, []
    while True:
        consumed = False
        pos = 0
        for m in _FORMAT.finditer(fmt):
            text, _ = unescape(fmt[pos:m.start()], octal_needs_zero=False)
            out.append(text)
            pos = m.end()
            flags, width, precision, conv = m.groups()
            if conv == "%":
                out.append("%")
                continue
            if width == "*":
                width = args.pop(0) if args else "0"
                consumed = True
            if precision == "*":
                precision = args.pop(0) if args else "0"
                consumed = True
            arg = args.pop(0) if args else None
            consumed = consumed or arg is not None
            if any(n and n.lstrip("-").isdigit() and abs(int(n)) > _MAX_WIDTH for n in (width, precision)):
                return call.fail(f"field width or precision over {_MAX_WIDTH} in '{m.group()}'")
            spec = "%" + flags + (width or "") + ("." + precision if precision is not None else "")
            if conv in "sb":
                value = arg or ""
                if conv == "b":
                    value, stop = unescape(value, octal_needs_zero=True)
                    if stop:
                        out.append((spec + "s") % value)
                        call.print("".join(out))
                        return status
                out.append((spec + "s") % value)
            elif conv == "c":
                out.append((spec + "s") % (arg or "")[:1])
            elif conv in "eEfgG":
                try:
                    out.append((spec + conv) % float(arg or 0))
                except ValueError:
                    status = call.fail(f"{arg}: expected numeric value")
                    out.append((spec + conv) % 0.0)
            else:
                number = _printf_int(arg or "0")
                if number is None:
                    status = call.fail(f"{arg}: expected numeric value")
                    number = 0
                out.append((spec + ("d" if conv in "iu" else conv)) % number)
        text, stop = unescape(fmt[pos:], octal_needs_zero=False)
        out.append(text)
        if stop or not args or not consumed:
            break
    call.print("".join(out))
    return status


def _printf_int(text: str) -> int | None:
    if text[:1] in ("'", '"'):
        return ord(text[1]) if len(text) > 1 else 0
    try:
        return int(text, 0) if not re.fullmatch(r"-?0[0-7]+", text) else int(text, 8)
    except ValueError:
        return None


def cat(call: Call) -> int:
    _, operands = parse_options(call, "")
    found, status = read_inputs(call, operands)
    for _, data in found:
        call.out(data)
    return status


def tee(call: Call) -> int:
    opts, operands = parse_options(call, "a", long={"append": "a"})
    call.out(call.stdin)
    status = 0
    for name in operands:
        try:
            host = call.host(name)
            with new_file(host, append=bool(opts.get("a"))) as f:
                f.write(call.stdin)
        except Failure as e:
            status = call.fail(str(e))
        except OSError:
            status = call.fail(f"{name}: No such file or directory")
    return status


def _head_tail(call: Call) -> int:
    args = []
    for a in call.args:
        if re.fullmatch(r"-\d+", a):
            args += ["-n", a[1:]]
        else:
            args.append(a)
    opts, operands = parse_options(call, "q", "n", {"lines": "n="}, args=args)
    count = str(opts.get("n", "10"))
    from_start = count.startswith("+")
    if not count.lstrip("+-").isdigit():
        return call.fail(f"invalid number of lines: '{count}'")
    n = int(count.lstrip("+-"))
    found, status = read_inputs(call, operands)
    for k, (name, data) in enumerate(found):
        if len(found) > 1 and not opts.get("q"):
            call.print(("\n" if k else "") + f"==> {name} <==\n")
        lines = data.splitlines(keepends=True)
        if call.name == "head":
            call.out(b"".join(lines[:n]))
        else:
            call.out(b"".join(lines[max(n - 1, 0):] if from_start else (lines[-n:] if n else [])))
    return status


def sleep(call: Call) -> int:
    if not call.args or not all(re.fullmatch(r"\d+(\.\d+)?[smhd]?", a) for a in call.args):
        return call.fail(f"invalid time interval '{' '.join(call.args)}'")
    return 0


def pwd(call: Call) -> int:
    parse_options(call, "LP")
    call.print(call.cwd + "\n")
    return 0


def basename(call: Call) -> int:
    _, operands = parse_options(call, "")
    if not operands:
        return call.fail("missing operand")
    name = operands[0].rstrip("/") or "/"
    name = posixpath.basename(name) or name
    if len(operands) > 1 and name != operands[1] and name.endswith(operands[1]):
        name = name[: -len(operands[1])]
    call.print(name + "\n")
    return 0


def dirname(call: Call) -> int:
    _, operands = parse_options(call, "")
    if not operands:
        return call.fail("missing operand")
    for p in operands:
        stripped = p.rstrip("/") or "/"
        call.print((posixpath.dirname(stripped).rstrip("/") or ("/" if stripped.startswith("/") else ".")) + "\n")
    return 0


def which(call: Call) -> int:
    opts, operands = parse_options(call, "a")
    status = 0
    for name in operands:
        found = lookup_path(call.root, call.cwd, call.env.get("PATH", ""), name)
        if found is None:
            status = 1
        else:
            call.print(found + "\n")
    return status


_UNARY = set("efdLhsxrwznpSbcgukt")
_BINARY_TEST = {"=", "==", "!=", "-eq", "-ne", "-lt", "-gt", "-le", "-ge", "-nt", "-ot", "<", ">"}


class _TestError(Exception):
    pass


def test(call: Call) -> int:
    args = list(call.args)
    if call.name == "[":
        if not args or args[-1] != "]":
            return call.fail("missing ]", 2)
        args = args[:-1]
    try:
        pos, value = _test_or(call, args, 0)
        if pos != len(args):
            raise _TestError(f"unexpected argument '{args[pos]}'")
        return 0 if value else 1
    except _TestError as e:
        return call.fail(str(e), 2)


def _test_or(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    i, value = _test_and(call, a, i)
    while i < len(a) and a[i] == "-o":
        i, right = _test_and(call, a, i + 1)
        value = value or right
    return i, value


def _test_and(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    i, value = _test_not(call, a, i)
    while i < len(a) and a[i] == "-a":
        i, right = _test_not(call, a, i + 1)
        value = value and right
    return i, value


def _test_not(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    if i < len(a) and a[i] == "!" and i + 1 < len(a):
        i, value = _test_not(call, a, i + 1)
        return i, not value
    return _test_primary(call, a, i)


def _test_primary(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    if i >= len(a):
        return i, False
    if i + 2 < len(a) and a[i + 1] in _BINARY_TEST:
        return i + 3, _test_binary(call, a[i], a[i + 1], a[i + 2])
    if a[i] == "(":
        i, value = _test_or(call, a, i + 1)
        if i >= len(a) or a[i] != ")":
            raise _TestError("missing )")
        return i + 1, value
    if len(a[i]) == 2 and a[i][0] == "-" and a[i][1] in _UNARY and i + 1 < len(a):
        return i + 2, _test_unary(call, a[i][1], a[i + 1])
    return i + 1, a[i] != ""


def _test_unary(call: Call, op: str, arg: str) -> bool:
    if op == "z":
        return arg == ""
    if op == "n":
        return arg != ""
    if op == "t":
        return False
    try:
        host = call.host(arg, follow_last=op not in "Lh")
    except Failure:
        return False
    if op in "Lh":
        return host.is_symlink()
    if not host.exists():
        return False
    mode = host.stat().st_mode
    checks = {"e": True, "f": stat.S_ISREG(mode), "d": stat.S_ISDIR(mode), "s": host.stat().st_size > 0,
              "x": bool(mode & 0o111), "r": True, "w": True, "p": stat.S_ISFIFO(mode),
              "S": stat.S_ISSOCK(mode), "b": stat.S_ISBLK(mode), "c": stat.S_ISCHR(mode),
              "g": bool(mode & stat.S_ISGID), "u": bool(mode & stat.S_ISUID), "k": bool(mode & stat.S_ISVTX)}
    return checks[op]


def _test_binary(call: Call, left: str, op: str, right: str) -> bool:
    if op in ("=", "=="):
        return left == right
    if op == "!=":
        return left != right
    if op in ("<", ">"):
        return left < right if op == "<" else left > right
    if op in ("-nt", "-ot"):
        def mtime(p: str) -> float | None:
            try:
                h = call.host(p)
                return h.stat().st_mtime if h.exists() else None
            except Failure:
                return None
        a, b = mtime(left), mtime(right)
        if op == "-nt":
            return a is not None and (b is None or a > b)
        return b is not None and (a is None or a < b)
    try:
        x, y = int(left.strip()), int(right.strip())
    except ValueError:
        raise _TestError(f"illegal number: {left if not left.strip().lstrip('-').isdigit() else right}") from None
    return {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-gt": x > y, "-le": x <= y, "-ge": x >= y}[op]


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
                data = host.read_bytes()
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
    address: re.Pattern | int | str | None   # a regex, a line number, '$' or every line
    verb: str                                # 's', 'd', 'p', or 'a' / 'i' / 'c' with text
    pattern: re.Pattern | None = None
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


_POSIX_CLASSES = {"[:space:]": r"\s", "[:blank:]": " \t", "[:digit:]": "0-9", "[:alpha:]": "a-zA-Z",
                  "[:alnum:]": "a-zA-Z0-9", "[:upper:]": "A-Z", "[:lower:]": "a-z", "[:xdigit:]": "0-9a-fA-F",
                  "[:punct:]": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")}


def _sed_regex(pattern: str, extended: bool, flags: int = 0) -> re.Pattern:
    """A POSIX basic (or, with -E, extended) regular expression as a Python one."""
    for name, chars in _POSIX_CLASSES.items():
        pattern = pattern.replace(name, chars)
    if not extended:
        out, i = [], 0
        while i < len(pattern):
            c = pattern[i]
            if c == "\\" and i + 1 < len(pattern):
                nxt = pattern[i + 1]
                out.append(nxt if nxt in "(){}+?|" else ("\n" if nxt == "n" else "\\" + nxt))
                i += 2
                continue
            out.append("\\" + c if c in "(){}+?|" else c)
            i += 1
        pattern = "".join(out)
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise ShellError(f"sed: cannot use the regular expression '{pattern}' ({e})") from None


def _sed_parse(script: str, extended: bool) -> list[_SedCommand]:
    commands, i = [], 0
    while i < len(script):
        while i < len(script) and script[i] in " \t\n;":
            i += 1
        if i >= len(script):
            break
        address: re.Pattern | int | str | None = None
        if script[i] == "/":
            text, i = _sed_split(script, i + 1, "/")
            address = _sed_regex(text, extended)
        elif script[i].isdigit():
            m = re.match(r"\d+", script[i:])
            address, i = int(m.group()), i + m.end()
        elif script[i] == "$":
            address, i = "$", i + 1
        verb = script[i] if i < len(script) else ""
        if verb == "s":
            delim = script[i + 1] if i + 1 < len(script) else ""
            if not delim or delim in "\\\n":
                raise ShellError(f"sed: bad s command in '{script}'")
            pattern, i = _sed_split(script, i + 2, delim)
            replacement, i = _sed_split(script, i, delim)
            m = re.match(r"[gIip0-9]*", script[i:])
            flags, i = m.group(), i + m.end()
            count = 0 if "g" in flags else int(re.sub(r"\D", "", flags) or 1)
            regex = _sed_regex(pattern, extended, re.I if "I" in flags or "i" in flags else 0)
            commands.append(_SedCommand(address, "s", regex, replacement, count, "p" in flags))
        elif verb in ("a", "i", "c"):
            # GNU one-liner `a text` or POSIX `a\` + newline + text; the text runs to the end of line
            m = re.match(r"[ \t]*(?:\\\n?)?[ \t]*", script[i + 1:])
            start = i + 1 + m.end()
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


def _sed_replace(template: str, m: re.Match) -> str:
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


def _sed_apply(commands: list[_SedCommand], data: bytes, quiet: bool) -> bytes:
    lines = decode(data).splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines, 1):
        body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        deleted, appended = False, []
        for c in commands:
            if isinstance(c.address, re.Pattern) and not c.address.search(body):
                continue
            if isinstance(c.address, int) and c.address != number:
                continue
            if c.address == "$" and number != len(lines):
                continue
            if c.verb == "d":
                deleted = True
                break
            if c.verb == "i":
                out.append(c.replacement + "\n")
            elif c.verb == "a":
                appended.append(c.replacement + "\n")
            elif c.verb == "c":
                out.append(c.replacement + "\n")
                deleted = True
                break
            elif c.verb == "p":
                out.append(body + end)
            elif c.verb == "s":
                done = [0]

                def substitute(m: re.Match) -> str:
                    done[0] += 1
                    if c.count and done[0] != c.count:
                        return m.group(0)
                    return _sed_replace(c.replacement, m)

                new = c.pattern.sub(substitute, body)
                if new != body and c.print_:
                    out.append(new + end)
                body = new
        if not deleted and not quiet:
            out.append(body + (end or ("\n" if appended else "")))
        out.extend(appended)
    return "".join(out).encode("utf-8", "surrogateescape")


def grep(call: Call) -> int:
    opts, operands = parse_options(call, "qvicnlEFxwsrh", "e", {"quiet": "q", "silent": "q", "invert-match": "v",
                                                          "ignore-case": "i", "count": "c", "line-number": "n",
                                                          "extended-regexp": "E", "fixed-strings": "F",
                                                          "regexp": "e=", "line-regexp": "x", "word-regexp": "w",
                                                          "no-messages": "s"})
    if opts.get("r"):
        raise ShellError("grep: unsupported option '-r'")
    patterns = [str(opts["e"])] if "e" in opts else ([operands.pop(0)] if operands else [])
    if not patterns:
        return call.fail("no pattern given", 2)
    pattern = re.escape(patterns[0]) if opts.get("F") else _sed_regex(patterns[0], bool(opts.get("E"))).pattern
    if opts.get("w"):
        pattern = rf"\b(?:{pattern})\b"
    if opts.get("x"):
        pattern = rf"(?:{pattern})\Z"
    regex = re.compile(pattern, re.I if opts.get("i") else 0)
    found, status = read_inputs(call, operands)
    status = 2 if status else 1
    for name, data in found:
        lines = decode(data).splitlines()
        hits = [(n, line) for n, line in enumerate(lines, 1)
                if bool(regex.match(line) if opts.get("x") else regex.search(line)) != bool(opts.get("v"))]
        if hits and status != 2:
            status = 0
        if opts.get("q"):
            continue
        prefix = f"{name}:" if len(found) > 1 and not opts.get("h") else ""
        if opts.get("l"):
            if hits:
                call.print(name + "\n")
        elif opts.get("c"):
            call.print(f"{prefix}{len(hits)}\n")
        else:
            call.print("".join(f"{prefix}{str(n) + ':' if opts.get('n') else ''}{line}\n" for n, line in hits))
    return status


def wc(call: Call) -> int:
    opts, operands = parse_options(call, "lwc", long={"lines": "l", "words": "w", "bytes": "c"})
    chosen = [k for k in "lwc" if opts.get(k)] or ["l", "w", "c"]
    found, status = read_inputs(call, operands)
    for name, data in found:
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        numbers = " ".join(str(counts[k]) for k in chosen)
        call.print(numbers + (f" {name}" if name != "-" else "") + "\n")
    return status


_TR_CLASSES = {"lower": "abcdefghijklmnopqrstuvwxyz", "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
               "digit": "0123456789", "space": " \t\n\r\f\v", "blank": " \t"}
_TR_CLASSES["alpha"] = _TR_CLASSES["lower"] + _TR_CLASSES["upper"]
_TR_CLASSES["alnum"] = _TR_CLASSES["alpha"] + _TR_CLASSES["digit"]


def _tr_set(text: str) -> str:
    text, _ = unescape(text, octal_needs_zero=False)
    out, i = [], 0
    while i < len(text):
        m = re.match(r"\[:(\w+):\]", text[i:])
        if m and m.group(1) in _TR_CLASSES:
            out.append(_TR_CLASSES[m.group(1)])
            i += m.end()
        elif i + 2 < len(text) and text[i + 1] == "-":
            out.append("".join(chr(c) for c in range(ord(text[i]), ord(text[i + 2]) + 1)))
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def tr(call: Call) -> int:
    opts, operands = parse_options(call, "dsc", long={"delete": "d", "squeeze-repeats": "s", "complement": "c"})
    if opts.get("c"):
        raise ShellError("tr: unsupported option '-c'")
    if not operands or len(operands) > 2 or (len(operands) == 1 and not (opts.get("d") or opts.get("s"))):
        return call.fail("missing operand", 1)
    text = decode(call.stdin)
    first = _tr_set(operands[0])
    if opts.get("d"):
        text = "".join(ch for ch in text if ch not in first)
        squeeze = _tr_set(operands[1]) if len(operands) > 1 else ""
    elif len(operands) == 2:
        second = _tr_set(operands[1])
        second = (second + second[-1:] * len(first))[:len(first)] if second else ""
        text = text.translate(str.maketrans(first, second)) if second else text
        squeeze = second
    else:
        squeeze = first
    if opts.get("s") and squeeze:
        text = re.sub("([" + re.escape(squeeze) + "])\\1+", r"\1", text)
    call.print(text)
    return 0


def sort(call: Call) -> int:
    opts, operands = parse_options(call, "runf", long={"reverse": "r", "unique": "u", "numeric-sort": "n",
                                                  "ignore-case": "f"})
    found, status = read_inputs(call, operands)
    lines = [line for _, data in found for line in decode(data).splitlines()]

    def key(line: str):
        if opts.get("n"):
            m = re.match(r"\s*(-?\d+(?:\.\d+)?)", line)
            return (float(m.group(1)) if m else 0.0, line)
        return (line.lower(), line) if opts.get("f") else (line, "")

    lines.sort(key=key, reverse=bool(opts.get("r")))
    if opts.get("u"):
        lines = [line for k, line in enumerate(lines) if k == 0 or key(line)[0] != key(lines[k - 1])[0]]
    call.print("".join(line + "\n" for line in lines))
    return status


def _ranges(call: Call, spec: str) -> list[tuple[int, int]]:
    """cut's LIST: 1,3-5,7- as 1-based inclusive ranges."""
    ranges = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d*)(-?)(\d*)", part)
        if not m or not (m.group(1) or m.group(3)):
            raise ShellError(f"cut: invalid list '{spec}'")
        first = int(m.group(1) or 1)
        last = int(m.group(3)) if m.group(3) else (first if not m.group(2) else 1 << 30)
        ranges.append((first, last))
    return ranges


def cut(call: Call) -> int:
    opts, operands = parse_options(call, "s", "dfc", {"delimiter": "d=", "fields": "f=", "characters": "c=",
                                                      "only-delimited": "s"})
    if ("f" in opts) == ("c" in opts):
        return call.fail("you must specify a list of fields (-f) or characters (-c)")
    delim = str(opts.get("d", "\t"))
    if len(delim) != 1:
        return call.fail("the delimiter must be a single character")
    ranges = _ranges(call, str(opts.get("f") or opts.get("c")))
    found, status = read_inputs(call, operands)
    out = []
    for _, data in found:
        for line in decode(data).splitlines():
            parts = line.split(delim) if "f" in opts else list(line)
            if "f" in opts and len(parts) == 1:
                if not opts.get("s"):
                    out.append(line + "\n")
                continue
            chosen = [p for n, p in enumerate(parts, 1) if any(a <= n <= b for a, b in ranges)]
            out.append((delim if "f" in opts else "").join(chosen) + "\n")
    call.print("".join(out))
    return status


def uniq(call: Call) -> int:
    opts, operands = parse_options(call, "c", long={"count": "c"})
    found, status = read_inputs(call, operands[:1])
    lines = [line for _, data in found for line in decode(data).splitlines()]
    groups: list[list] = []
    for line in lines:
        if groups and groups[-1][0] == line:
            groups[-1][1] += 1
        else:
            groups.append([line, 1])
    call.print("".join((f"{n:>7} {line}" if opts.get("c") else line) + "\n" for line, n in groups))
    return status


def seq(call: Call) -> int:
    args = call.args
    if not 1 <= len(args) <= 3 or not all(re.fullmatch(r"-?\d+", a) for a in args):
        raise ShellError(f"seq: only integer 'seq [FIRST [STEP]] LAST' is supported, not '{' '.join(args)}'")
    numbers = [int(a) for a in args]
    first, step, last = (1, 1, numbers[0]) if len(numbers) == 1 else (
        (numbers[0], 1, numbers[1]) if len(numbers) == 2 else tuple(numbers))
    if step == 0:
        return call.fail("the increment must not be zero")
    values = range(first, last + (1 if step > 0 else -1), step)
    if len(values) > 1_000_000:
        return call.fail(f"more than 1000000 numbers from '{' '.join(args)}'")
    call.print("".join(f"{v}\n" for v in values))
    return 0


def xargs(call: Call) -> int:
    opts, operands = parse_options(call, "r0t", "nId", {"no-run-if-empty": "r", "null": "0", "max-args": "n=",
                                                   "replace": "I=", "delimiter": "d=", "verbose": "t"})
    text = decode(call.stdin)
    command = operands or ["echo"]
    if "I" in opts:
        items = [line for line in text.splitlines() if line.strip()]
    elif opts.get("0") or "d" in opts:
        delim = "\0" if opts.get("0") else unescape(str(opts["d"]), False)[0]
        items = [item for item in text.split(delim) if item]
    else:
        try:
            items = shlex.split(text)
        except ValueError as e:
            return call.fail(f"unmatched quote in the input ({e})")
    if "I" in opts:
        batches = [[arg.replace(str(opts["I"]), item) for arg in command] for item in items]
    else:
        size = int(str(opts["n"])) if "n" in opts and str(opts["n"]).isdigit() else max(len(items), 1)
        batches = [command + items[k:k + size] for k in range(0, len(items), size)] or \
            ([] if opts.get("r") else [list(command)])
    status = 0
    for argv in batches:
        if opts.get("t"):
            call.err((" ".join(argv) + "\n").encode("utf-8", "surrogateescape"))
        if call.run(argv) != 0:
            status = 123
    return status


UTILITIES: dict[str, Utility] = {
    "echo": echo, "printf": printf, "cat": cat, "tee": tee, "head": _head_tail, "tail": _head_tail,
    "sleep": sleep, "pwd": pwd, "basename": basename, "dirname": dirname, "which": which,
    "test": test, "[": test, "sed": sed, "grep": grep, "wc": wc, "tr": tr, "sort": sort, "xargs": xargs,
    "cut": cut, "uniq": uniq, "seq": seq,
}
