"""Parsing RUN scripts: bashlex for the structure, plus the two things it cannot do.

bashlex mishandles here-documents (quoted delimiters, `<<-`) and raises on `$((...))`, so
`prepare()` blanks both out of a copy of the script, keeping every offset, and records the
here-doc bodies. The interpreter slices words from the original text by bashlex's positions
and expands them itself (see expand.py), so quoting is never lost.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import bashlex

from boxer_py.errors import ShellError
from boxer_py.shell import limits


@dataclass(frozen=True)
class Heredoc:
    body: str
    expand: bool   # False when the delimiter was quoted (<<'EOF')


@dataclass(frozen=True)
class Program:
    text: str                       # the original script; node positions index into it
    trees: list                     # bashlex nodes, run in order
    heredocs: dict[int, Heredoc]    # keyed by the offset of the redirect's target word
    cases: frozenset[int] = frozenset()   # offsets of `case ... esac` (a placeholder word for bashlex)


_WORD_END = set(" \t\n;&|<>()")


_CACHE: dict[str, Program] = {}   # small texts parsed again and again (loop bodies, $(...), case branches)
_CACHED_TEXT, _CACHE_SIZE = 4096, 512


def parse(text: str) -> Program:
    """The parsed program; bounded by limits.MAX_SCRIPT, and what is parsed anew in one RUN by
    limits.MAX_PARSED (bashlex takes seconds for tens of KB of tiny commands)."""
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    if len(text) > limits.MAX_SCRIPT:
        raise ShellError(f"a script (RUN line, eval, source, sh -c or $(...)) is longer than "
                         f"{limits.size_text(limits.MAX_SCRIPT)}")
    limits.budget().parsed(len(text))
    program = _parse(text)
    if len(text) <= _CACHED_TEXT:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)), None)
        _CACHE[text] = program
    return program


def _parse(text: str) -> Program:
    sanitized, heredocs, cases = prepare(text)
    if not sanitized.strip():
        return Program(text, [], heredocs, cases)
    try:
        trees = bashlex.parse(sanitized)
    except NotImplementedError as e:
        if "pattern" in str(e) or "case" in str(e):
            raise ShellError("case ... esac is not supported by boxer's shell; use if/elif") from None
        what = re.search(r"type = \{([^}]*)\}", str(e))
        raise ShellError(f"unsupported shell syntax: {what.group(1) if what else e}") from None
    except Exception as e:  # bashlex raises ParsingError and, on odd input, its own internal errors
        if re.search(r"(^|[\s;&|(!])\[\[\s", sanitized):
            raise ShellError("bash's [[ ... ]] is not supported in RUN; use [ ... ]") from None
        message = str(e).split(" (position")[0]
        raise ShellError(f"syntax error: {message}") from None
    return Program(text, trees, heredocs, cases)


def prepare(text: str) -> tuple[str, dict[int, Heredoc], frozenset[int]]:
    """A same-length copy of `text` that bashlex can parse, the here-docs it hid, and where
    the `case` statements (which bashlex cannot parse) start.

    `$(...)`, backticks and `$((...))` become `$(:   )`: bashlex trips on `&&` inside them,
    and the interpreter parses each substitution itself when it runs it. A whole
    `case ... esac` becomes one word of underscores that the interpreter recognises.
    """
    out = list(text)
    heredocs: dict[int, Heredoc] = {}
    pending: list[tuple[int, str, bool, bool]] = []
    in_dquote = False
    cases: set[int] = set()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif not in_dquote and _keyword_at(text, i, "case") and _command_position(text, i):
            end = find_esac(text, i)
            out[i:end] = ["_"] * (end - i)
            cases.add(i)
            i = end
        elif text.startswith("$(", i):
            i = _blank(out, i, match_paren(text, i + 1))
        elif c == "`":
            i = _blank(out, i, end_backtick(text, i + 1))
        elif in_dquote:
            in_dquote = c != '"'
            i += 1
        elif c == '"':
            in_dquote = True
            i += 1
        elif c == "'":
            end = text.find("'", i + 1)
            i = n if end < 0 else end + 1
        elif c == "#" and (i == 0 or text[i - 1] in _WORD_END):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("<<<", i):   # a here-string, not a here-doc
            i += 3
        elif text.startswith("<<", i):
            i = _heredoc_operator(text, out, i, pending)
        elif c == "\n" and pending:
            i = _heredoc_bodies(text, out, i + 1, pending, heredocs)
            pending = []
        else:
            i += 1
    if pending:
        raise ShellError(f"here-document delimited by end of script (wanted '{pending[0][1]}')")
    return "".join(out), heredocs, frozenset(cases)


_BOUNDARY = set(" \t\n;&|()")


def _keyword_at(text: str, i: int, word: str) -> bool:
    end = i + len(word)
    return (text.startswith(word, i) and (i == 0 or text[i - 1] in _BOUNDARY)
            and (end == len(text) or text[end] in _BOUNDARY))


def _command_position(text: str, i: int) -> bool:
    return re.search(r"(^|[;&|({\n]|\bthen|\bdo|\belse|!)[ \t]*$", text[:i]) is not None


def _past_quote(text: str, i: int) -> int | None:
    """Where a backslash escape or a quoted part starting at `i` ends (None if none starts there)."""
    c = text[i]
    if c == "\\":
        return i + 2
    if c == "'":
        end = text.find("'", i + 1)
        return len(text) if end < 0 else end + 1
    if c == '"':
        return end_dquote(text, i + 1) + 1
    return None


def _past_quoted(text: str, i: int) -> int | None:
    """Where a quoted part or substitution starting at `i` ends (None if none starts there)."""
    past = _past_quote(text, i)
    if past is not None:
        return past
    c = text[i]
    if text.startswith("$(", i):
        return match_paren(text, i + 1) + 1
    if c == "`":
        return end_backtick(text, i + 1) + 1
    return None


def find_esac(text: str, i: int) -> int:
    """The offset just past the `esac` closing the `case` at `i` (nested cases skipped)."""
    n, depth = len(text), 0
    i += 4
    while i < n:
        past = _past_quoted(text, i)
        if past is not None:
            i = past
        elif text[i] == "#" and text[i - 1] in _WORD_END:
            while i < n and text[i] != "\n":
                i += 1
        elif _keyword_at(text, i, "case"):
            depth += 1
            i += 4
        elif _keyword_at(text, i, "esac"):
            if depth == 0:
                return i + 4
            depth -= 1
            i += 4
        else:
            i += 1
    raise ShellError("case without a matching esac")


def _blank(out: list[str], start: int, end: int) -> int:
    """Replace a substitution spanning start..end by `$(:  )` (or `` `: ` ``) of the same length."""
    if end - start >= 3:
        opener = ["$", "(", ":"] if out[start] == "$" else ["`", ":"]
        out[start:end + 1] = opener + [" "] * (end - start - len(opener)) + [out[end]]
    return end + 1


def _heredoc_operator(text: str, out: list[str], i: int, pending: list) -> int:
    j = i + 2
    strip = j < len(text) and text[j] == "-"
    if strip:
        j += 1
    while j < len(text) and text[j] in " \t":
        j += 1
    delim, expand = [], True
    while j < len(text) and text[j] not in _WORD_END:
        c = text[j]
        if c in "'\"":
            end = text.find(c, j + 1)
            if end < 0:
                raise ShellError("unterminated quote in a here-document delimiter")
            delim.append(text[j + 1:end])
            expand, j = False, end + 1
        elif c == "\\" and j + 1 < len(text):
            delim.append(text[j + 1])
            expand, j = False, j + 2
        else:
            delim.append(c)
            j += 1
    if not delim:
        raise ShellError("here-document without a delimiter word after <<")
    out[i:j] = ["<"] + ["_"] * (j - i - 1)
    pending.append((i + 1, "".join(delim), strip, expand))
    return j


def _heredoc_bodies(text: str, out: list[str], start: int, pending: list, heredocs: dict[int, Heredoc]) -> int:
    pos = start
    for key, delim, strip, expand in pending:
        lines = []
        while True:
            if pos >= len(text):
                raise ShellError(f"here-document delimited by end of script (wanted '{delim}')")
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            line = text[pos:end]
            for k in range(pos, end):
                out[k] = " "
            pos = end + 1
            if strip:
                line = line.lstrip("\t")
            if line == delim:
                break
            lines.append(line + "\n")
        heredocs[key] = Heredoc("".join(lines), expand)
    return pos


def match_paren(text: str, i: int) -> int:
    """Index of the `)` matching the `(` at `i`, skipping quotes, nested parentheses and
    here-doc bodies (`$(cat <<EOF ... EOF)`)."""
    depth, n = 0, len(text)
    arithmetic = text.startswith("((", i)
    pending: list = []
    while i < n:
        c = text[i]
        past = _past_quote(text, i)
        if past is not None:
            i = past
            continue
        if not arithmetic and text.startswith("<<", i) and not text.startswith("<<<", i):
            i = _heredoc_operator(text, list(text), i, pending)
            continue
        if c == "\n" and pending:
            i = _heredoc_bodies(text, list(text), i + 1, pending, {})
            pending = []
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellError("unterminated $( or ( in the script")


def match_brace(text: str, i: int) -> int:
    """Index of the `}` closing the `${` whose `{` is at `i`."""
    n = len(text)
    i += 1
    while i < n:
        past = _past_quote(text, i)
        if past is not None:
            i = past
            continue
        if text.startswith("${", i):
            i = match_brace(text, i + 1) + 1
            continue
        if text.startswith("$(", i):
            i = match_paren(text, i + 1) + 1
            continue
        if text[i] == "}":
            return i
        i += 1
    raise ShellError("unterminated ${ in the script")


def end_dquote(text: str, i: int) -> int:
    """Index of the `"` closing a double-quoted string whose content starts at `i`."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        if text.startswith("$(", i):
            i = match_paren(text, i + 1) + 1
            continue
        if text.startswith("${", i):
            i = match_brace(text, i + 1) + 1
            continue
        if c == "`":
            i = end_backtick(text, i + 1) + 1
            continue
        i += 1
    raise ShellError("unterminated double quote in the script")


def end_backtick(text: str, i: int) -> int:
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "`":
            return i
        i += 1
    raise ShellError("unterminated ` in the script")


@dataclass(frozen=True)
class CaseItem:
    patterns: list[str]   # raw words, expanded by the interpreter
    body: str             # shell text, parsed when it runs


def parse_case(text: str) -> tuple[str, list[CaseItem]]:
    """Split `case WORD in PATTERN|PATTERN) BODY ;; ... esac` into its raw parts."""
    word, i = _case_word(text, 4)
    keyword, i = _case_word(text, i)
    if not word or keyword != "in":
        raise ShellError("case: expected 'case WORD in'")
    items: list[CaseItem] = []
    while True:
        i = _skip_blank(text, i)
        if _keyword_at(text, i, "esac"):
            return word, items
        if i < len(text) and text[i] == "(":
            i += 1
        patterns = []
        while True:
            pattern, i = _case_word(text, i)
            if not pattern:
                raise ShellError(f"case: bad pattern near '{text[i:i + 20]}'")
            patterns.append(pattern)
            i = _skip_blank(text, i, newlines=False)
            if i < len(text) and text[i] == "|":
                i += 1
                continue
            if i < len(text) and text[i] == ")":
                i += 1
                break
            raise ShellError(f"case: expected ')' after the pattern '{pattern}'")
        end, i = _case_body_end(text, i)
        items.append(CaseItem(patterns, text[end[0]:end[1]]))


def _skip_blank(text: str, i: int, newlines: bool = True) -> int:
    while i < len(text):
        if text[i] in " \t" or (newlines and text[i] in "\n;"):
            i += 1
        elif newlines and text[i] == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
        else:
            break
    return i


def _case_word(text: str, i: int) -> tuple[str, int]:
    """One shell word starting at `i` (after blanks), quotes and substitutions kept."""
    i = _skip_blank(text, i, newlines=True)
    start, n = i, len(text)
    while i < n and text[i] not in _BOUNDARY:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellError("unterminated single quote in case")
            i = end + 1
        elif c == '"':
            i = end_dquote(text, i + 1) + 1
        elif text.startswith("$(", i):
            i = match_paren(text, i + 1) + 1
        elif text.startswith("${", i):
            i = match_brace(text, i + 1) + 1
        elif c == "`":
            i = end_backtick(text, i + 1) + 1
        else:
            i += 1
    return text[start:i], i


def _case_body_end(text: str, i: int) -> tuple[tuple[int, int], int]:
    """((start, end) of the body, where the next item starts): the body ends at `;;` or `esac`."""
    start, n = i, len(text)
    while i < n:
        past = _past_quoted(text, i)
        if past is not None:
            i = past
        elif _keyword_at(text, i, "case"):
            i = find_esac(text, i)
        elif text.startswith(";;", i):
            if text.startswith(";;&", i):
                raise ShellError("case: ;;& (bash fall-through) is not supported")
            return (start, i), i + 2
        elif _keyword_at(text, i, "esac"):
            return (start, i), i
        else:
            i += 1
    raise ShellError("case without a matching esac")
