"""What a terminal shows after a program wrote to it: enough of a VT100 for progress lines."""
from __future__ import annotations

import re


def screen(raw: str) -> list[str]:
    """The lines a terminal shows once `raw` is written to it: text, carriage returns, newlines,
    cursor up (ESC [ n A), erase to the end of the line (ESC [ K) and of the screen (ESC [ J)."""
    lines, row, col = [""], 0, 0
    for m in re.finditer(r"\x1b\[(\d*)([A-Za-z])|\r|\n|[^\x1b\r\n]+", raw):
        text, code = m.group(0), m.group(2)
        if text == "\n":
            row, col = row + 1, 0
            lines.extend([""] * (row + 1 - len(lines)))
        elif text == "\r":
            col = 0
        elif code == "A":
            row = max(0, row - int(m.group(1) or 1))
        elif code in ("K", "J"):
            lines[row] = lines[row][:col]
            if code == "J":
                del lines[row + 1:]
        elif not code:
            line = lines[row].ljust(col)
            lines[row], col = line[:col] + text + line[col + len(text):], col + len(text)
    return [line for line in lines if line]
