"""Text utilities of the RUN shell: echo, printf, cat, tee, head, tail, wc, tr, sort, cut, uniq, seq.
"""
from __future__ import annotations

import re

from boxer_py.shell import limits
from boxer_py.shell.parse import ShellError
from boxer_py.shell.utilities.core import (
    Call,
    Failure,
    Utility,
    decode,
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
    status, out = 0, limits.Collector("printf's output")
    while True:
        consumed = False
        pos = 0
        for m in _FORMAT.finditer(fmt):
            text, _ = unescape(fmt[pos:m.start()], octal_needs_zero=False)
            out.add(text)
            pos = m.end()
            flags, width, precision, conv = m.groups()
            if conv == "%":
                out.add("%")
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
                        out.add((spec + "s") % value)
                        call.print(out.text())
                        return status
                out.add((spec + "s") % value)
            elif conv == "c":
                out.add((spec + "s") % (arg or "")[:1])
            elif conv in "eEfgG":
                try:
                    out.add((spec + conv) % float(arg or 0))
                except ValueError:
                    status = call.fail(f"{arg}: expected numeric value")
                    out.add((spec + conv) % 0.0)
            else:
                number = _printf_int(arg or "0")
                if number is None:
                    status = call.fail(f"{arg}: expected numeric value")
                    number = 0
                out.add((spec + ("d" if conv in "iu" else conv)) % number)
        text, stop = unescape(fmt[pos:], octal_needs_zero=False)
        out.add(text)
        if stop or not args or not consumed:
            break
    call.print(out.text())
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
        lines = limits.split_lines(data, keepends=True)
        if call.name == "head":
            call.out(b"".join(lines[:n]))
        else:
            call.out(b"".join(lines[max(n - 1, 0):] if from_start else (lines[-n:] if n else [])))
    return status


def wc(call: Call) -> int:
    opts, operands = parse_options(call, "lwc", long={"lines": "l", "words": "w", "bytes": "c"})
    chosen = [k for k in "lwc" if opts.get(k)] or ["l", "w", "c"]
    found, status = read_inputs(call, operands)
    for name, data in found:
        words = sum(1 for _ in re.finditer(rb"\S+", data))
        counts = {"l": data.count(b"\n"), "w": words, "c": len(data)}
        numbers = " ".join(str(counts[k]) for k in chosen)
        call.print(numbers + (f" {name}" if name != "-" else "") + "\n")
    return status


_TR_CLASSES = {"lower": "abcdefghijklmnopqrstuvwxyz", "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
               "digit": "0123456789", "space": " \t\n\r\f\v", "blank": " \t"}
_TR_CLASSES["alpha"] = _TR_CLASSES["lower"] + _TR_CLASSES["upper"]
_TR_CLASSES["alnum"] = _TR_CLASSES["alpha"] + _TR_CLASSES["digit"]


_TR_CLASS = re.compile(r"\[:(\w+):\]")
_MAX_TR_SET = 1 << 16


def _tr_set(text: str) -> str:
    text, _ = unescape(text, octal_needs_zero=False)
    out, i, size = [], 0, 0
    while i < len(text):
        m = _TR_CLASS.match(text, i)
        if m and m.group(1) in _TR_CLASSES:
            out.append(_TR_CLASSES[m.group(1)])
            i = m.end()
        elif i + 2 < len(text) and text[i + 1] == "-":
            size += max(ord(text[i + 2]) - ord(text[i]), 0)
            if size > _MAX_TR_SET:
                raise ShellError(f"tr: a set of more than {_MAX_TR_SET} characters")
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
    lines = [line for _, data in found for line in limits.split_lines(decode(data))]

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


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


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
        for line in limits.split_lines(decode(data)):
            if "c" in opts:   # slices, not a list of every character
                out.append("".join(line[a - 1:b] for a, b in _merged(ranges)) + "\n")
                continue
            parts = line.split(delim)
            if len(parts) == 1:
                if not opts.get("s"):
                    out.append(line + "\n")
                continue
            chosen = [p for n, p in enumerate(parts, 1) if any(a <= n <= b for a, b in ranges)]
            out.append(delim.join(chosen) + "\n")
    call.print("".join(out))
    return status


def uniq(call: Call) -> int:
    opts, operands = parse_options(call, "c", long={"count": "c"})
    found, status = read_inputs(call, operands[:1])
    lines = [line for _, data in found for line in limits.split_lines(decode(data))]
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
    if not 1 <= len(args) <= 3 or not all(re.fullmatch(r"-?\d{1,18}", a) for a in args):
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


UTILITIES: dict[str, Utility] = {
    "echo": echo, "printf": printf, "cat": cat, "tee": tee, "head": _head_tail, "tail": _head_tail, "wc": wc,
    "tr": tr, "sort": sort, "cut": cut, "uniq": uniq, "seq": seq,
}
