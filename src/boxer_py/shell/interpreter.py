"""The shell that runs Dockerfile RUN lines: `/bin/sh -c script` acting on an image's rootfs.

There is no fork/exec in WASI, so the builder interprets RUN itself. Control flow happens
here, parsing in parse.py, word expansion in expand.py, redirections in redirect.py (with
the sinks of streams.py), builtins (cd, set, read...) in builtins.py as functions over the
context.Context this shell is; utilities (cp, rm, chown, sed, useradd...) live in
utilities/, one module per command family, called with a utilities.core.Call and found in
utilities/table.py; `sh -c` and `#!/bin/sh` scripts (scripts.py) run in a new shell here;
every other command (python, pip, a .wasm, apt-get...) is handed to
`external`, which the build decides how to run or refuse. Every guest path goes through
rootfs.resolve, so nothing a script does reaches outside `root`. Pipelines are buffered:
the left side finishes first. Every count and size is bounded in limits.py: run_script
installs the RUN's Budget, and dispatch, the loops, nesting, parsing and matching charge it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import posixpath
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxer_py.image.config import DEFAULT_PATH
from boxer_py.shell import limits
from boxer_py.shell.builtins import BUILTINS, UNSUPPORTED_BUILTINS, is_name
from boxer_py.shell.context import (
    OPTION_LETTERS,
    OPTION_NAMES,
    FunctionReturn,
    LoopControl,
    ShellExit,
    State,
)
from boxer_py.shell.expand import Expander
from boxer_py.shell.parse import Program, ShellError, parse, parse_case
from boxer_py.shell.redirect import RedirectError, redirect
from boxer_py.shell.scripts import is_shell, shell_script
from boxer_py.shell.streams import Buffer, File, Input, Log, Sink
from boxer_py.shell.utilities import core as utilities
from boxer_py.shell.utilities.table import STANDARD_BIN, find_utility

__all__ = ["Invocation", "Completed", "External", "ShellResult", "ShellError", "run_script"]

@dataclass
class Invocation:
    """A command the shell does not implement itself."""
    argv: list[str]
    env: dict[str, str]      # the exported environment at that point
    cwd: str                 # guest absolute path
    stdin: bytes
    # when the command's stdout and stderr are both the watched build log: where to write them
    # as they are written (then Completed.echoed says so, and they are not written again)
    echo: Callable[[bytes], None] | None = None
    # where its stdout and stderr go, for a caller that writes them as they come (boxer run)
    out: Callable[[bytes], None] | None = None
    err: Callable[[bytes], None] | None = None
    inherited: bool = False   # its stdin is the script's own (not a pipe, file or here-document)


@dataclass
class Completed:
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    echoed: bool = False  # stdout and stderr were already written (to the Invocation's echo, or out and err)


External = Callable[[Invocation], Completed]


@dataclass
class ShellResult:
    exit_code: int           # like `/bin/sh -c script`: the status of the last command (or exit N)
    log: bytes               # stdout+stderr not redirected to files, in order (the build log)
    owners: dict[str, tuple[int, int]]   # guest path -> (uid, gid) recorded by chown


def run_script(script: str, *, root: Path, env: dict[str, str], cwd: str, external: External,
               echo: Callable[[bytes], None] | None = None, out: Sink | None = None, err: Sink | None = None,
               stdin: bytes = b"", stop: Callable[[], None] | None = None) -> ShellResult:
    """Run `script` like `/bin/sh -c script` with the rootfs at `root` as `/`; `echo` is told
    the build log's output as each command writes it (what is redirected elsewhere is not).
    `out` and `err` (boxer run) take stdout and stderr instead of the log; `stop` is called
    before each command and loop iteration, and may raise to end the script (a timeout)."""
    shared = _Shared(root, external, Log(bytearray(), echo), budget=limits.Budget(stop))
    try:
        with limits.running(shared.budget):
            state = State(vars=dict(env), exported=set(env), cwd=posixpath.normpath("/" + cwd.lstrip("/")))
            state.vars["PWD"] = state.cwd
            state.exported.add("PWD")   # as dash does
            shared.stdin = Input(stdin)
            shell = _Shell(shared, state, parse(script), stdin=shared.stdin, fds={1: out or shared.log, 2: err or shared.log})
            status = shell.run_protected()
    except RecursionError:
        raise ShellError("the script is nested too deeply") from None
    except ValueError as e:   # int() of a number with thousands of digits (shift, exit, head -n...)
        if "digits" not in str(e):
            raise
        raise ShellError("a number in the script has too many digits") from None
    finally:
        for f in shared.persistent:
            f.close()
    return ShellResult(status, shared.log.value(), shared.owners)


# -- state -----------------------------------------------------------------------------------
@dataclass
class _Shared:
    root: Path
    external: External
    log: Log = field(default_factory=lambda: Log(bytearray()))
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)
    persistent: list[File] = field(default_factory=list)
    budget: limits.Budget = field(default_factory=limits.Budget)
    stdin: Input = field(default_factory=Input)   # the script's own


class _Shell:
    """One shell (or subshell) running one parsed program; state may be shared (eval, source)."""

    def __init__(self, shared: _Shared, state: State, program: Program, stdin: Input, fds: dict[int, Sink]):
        self.shared, self.state, self.program = shared, state, program
        self.stdin, self.fds = stdin, fds
        self.tested = False   # inside an if/while condition, a non-last && / || item, or after `!`
        self.subst_status: int | None = None   # of the last $(...) expanded here, for `X=$(cmd)`

    # -- running ---------------------------------------------------------------------------
    def run_protected(self) -> int:
        with self.shared.budget.nested("eval, source, $(...), a subshell or sh -c"):
            try:
                for tree in self.program.trees:
                    self._list([tree])
                return self.state.status
            except ShellExit as e:
                self.state.status = e.code
                return e.code
            except (LoopControl, FunctionReturn) as e:
                return e.code if isinstance(e, FunctionReturn) else self.state.status

    def _child(self, program: Program, state: State | None = None, stdin: Input | None = None,
               fds: dict[int, Sink] | None = None) -> _Shell:
        child = _Shell(self.shared, state or self.state.copy(), program,
                       self.stdin if stdin is None else stdin, dict(self.fds) if fds is None else fds)
        child.tested = self.tested
        return child

    @contextlib.contextmanager
    def _testing(self, on: bool) -> Iterator[None]:
        saved, self.tested = self.tested, self.tested or on
        try:
            yield
        finally:
            self.tested = saved

    def _list(self, parts: list) -> int:
        chains: list[list[tuple[str, Any]]] = [[]]   # bashlex nodes
        op = ""
        for p in parts:
            if p.kind == "operator":
                if p.op == "&":
                    raise ShellError("background commands (&) are not supported in RUN")
                if p.op in ("&&", "||"):
                    op = p.op
                else:
                    chains.append([])
                    op = ""
            else:
                chains[-1].append((op, p))
        for chain in chains:
            for k, (op, node) in enumerate(chain):
                status = self.state.status
                if (op == "&&" and status != 0) or (op == "||" and status == 0):
                    continue
                last = k == len(chain) - 1
                with self._testing(not last):
                    status = self._exec(node)
                self.state.status = status
                negated = node.kind == "pipeline" and node.parts[0].kind == "reservedword"
                if last and status and "errexit" in self.state.options and not self.tested and not negated:
                    raise ShellExit(status)
        return self.state.status

    def _exec(self, node) -> int:
        kind = node.kind
        if kind == "list":
            return self._list(node.parts)
        if kind == "pipeline":
            return self._pipeline(node)
        if kind == "command":
            return self._simple(node)
        if kind == "compound":
            return self._compound(node)
        if kind == "if":
            return self._if(node)
        if kind == "for":
            return self._for(node)
        if kind in ("while", "until"):
            return self._while(node)
        if kind == "function":
            name = next(p for p in node.parts if p.kind == "word")
            body = [p for p in node.parts if p.kind == "compound"][-1]
            self.state.functions[self._source(name)] = (self.program, body)
            return 0
        raise ShellError(f"unsupported shell construct ({kind})")

    def _body(self, node) -> int:
        return self._list(node.parts) if node.kind == "list" else self._list([node])

    def _pipeline(self, node) -> int:
        parts = list(node.parts)
        negate = parts[0].kind == "reservedword" and parts[0].word == "!"
        if negate:
            parts = parts[1:]
        commands = [p for p in parts if p.kind != "pipe"]
        pipes = [p.pipe for p in parts if p.kind == "pipe"]
        with self._testing(negate):
            if len(commands) == 1:
                status = self._exec(commands[0])
            else:
                data, statuses = self.stdin, []
                for k, command in enumerate(commands):
                    buffer = Buffer()
                    fds = dict(self.fds)
                    if k < len(pipes):
                        fds[1] = buffer
                        if pipes[k] == "|&":
                            fds[2] = buffer
                    sub = self._child(dataclasses.replace(self.program, trees=[command]),
                                      stdin=data, fds=fds)
                    statuses.append(sub.run_protected())
                    data = Input(bytes(buffer.data))
                status = statuses[-1]
                if "pipefail" in self.state.options:
                    status = next((s for s in reversed(statuses) if s), 0)
        return int(status == 0) if negate else status

    def _compound(self, node) -> int:
        redirects = getattr(node, "redirects", None) or []
        with self._redirected(redirects) as ok:
            if not ok:
                return 2
            first = node.list[0]
            inner = [n for n in node.list if n.kind != "reservedword"]
            if first.kind == "reservedword" and first.word == "(":
                sub = self._child(dataclasses.replace(self.program, trees=inner))
                return sub.run_protected()
            status = self.state.status
            for n in inner:
                status = self._body(n)
            return status

    def _if(self, node) -> int:
        parts, clauses, otherwise = node.parts, [], None
        k = 0
        while k < len(parts):
            p = parts[k]
            if p.kind == "reservedword" and p.word in ("if", "elif"):
                clauses.append((parts[k + 1], parts[k + 3]))
                k += 4
            elif p.kind == "reservedword" and p.word == "else":
                otherwise = parts[k + 1]
                k += 2
            else:
                k += 1
        for condition, body in clauses:
            with self._testing(True):
                status = self._body(condition)
            if status == 0:
                return self._body(body)
        return self._body(otherwise) if otherwise is not None else 0

    def _for(self, node) -> int:
        parts = node.parts
        name = self.program.text[parts[1].pos[0]:parts[1].pos[1]]
        words, k = [], 2
        if k < len(parts) and parts[k].kind == "reservedword" and parts[k].word == "in":
            k += 1
            while parts[k].kind == "word":
                words.append(parts[k])
                k += 1
        body = next(p for p in parts if p.kind not in ("reservedword", "word"))
        items: list[str] = []
        made = limits.Words("the list of a for loop")
        for w in words:
            items.extend(made.add(f) for f in self._expander().fields(self._source(w)))
        status = 0
        for n, item in enumerate(items, 1):
            self.shared.budget.iteration("for", n)
            self.assign(name, item)
            status, stop = self._iteration(body, status)
            if stop:
                break
        return status

    def _iteration(self, body, status: int) -> tuple[int, bool]:
        """One pass of a loop body: (the loop's status after it, whether `break` ends the loop).
        `continue` keeps the previous status; `break N`/`continue N` go on up one level less."""
        try:
            return self._body(body), False
        except LoopControl as c:
            if c.levels > 1:
                raise LoopControl(c.levels - 1, c.is_break) from None
            return status, c.is_break

    def _while(self, node) -> int:
        parts = node.parts
        condition, body = parts[1], parts[3]
        until = node.kind == "until"
        status = 0
        n = 0
        while True:
            n += 1
            self.shared.budget.iteration(node.kind, n)
            with self._testing(True):
                ok = self._body(condition) == 0
            if ok == until:
                return status
            status, stop = self._iteration(body, status)
            if stop:
                return status

    # -- simple commands -------------------------------------------------------------------
    def _source(self, node) -> str:
        return self.program.text[node.pos[0]:node.pos[1]]

    def _expander(self) -> Expander:
        return Expander(self, self.shared.root, self.state.cwd, "noglob" in self.state.options)

    def _simple(self, node) -> int:
        assignments = [p for p in node.parts if p.kind == "assignment"]
        words = [p for p in node.parts if p.kind == "word"]
        redirects = [p for p in node.parts if p.kind == "redirect"]
        if words and words[0].pos[0] in self.program.cases:
            with self._redirected(redirects) as ok:
                return self._case(self._source(words[0])) if ok else 2
        self.subst_status = None
        expander = self._expander()
        argv: list[str] = []
        for w in words + assignments:
            if any(p.kind == "processsubstitution" for p in getattr(w, "parts", [])):
                raise ShellError("process substitution <(...) is not supported in RUN")
        line = limits.Words("a command line")   # bounded while it is made, not once it is
        for w in words:
            text = self._source(w)
            if argv and argv[0] in ("export", "local") and _is_assignment(text):
                argv.append(line.add(expander.string(text)))
            else:
                argv.extend(line.add(f) for f in expander.fields(text))
        values = []
        for a in assignments:
            name, _, value = self._source(a).partition("=")
            values.append((name, line.add(expander.string(value))))
        if argv == ["exec"]:
            return self._exec_redirections(redirects)
        with self._redirected(redirects) as ok:
            if not ok:
                return 2
            if not argv:
                for name, value in values:
                    self.assign(name, value)
                self._trace([f"{n}={v}" for n, v in values])
                return self.subst_status or 0
            self._trace([f"{n}={v}" for n, v in values] + argv)
            return self.dispatch(argv, dict(values))

    def _case(self, text: str) -> int:
        word, items = parse_case(text)
        expander = self._expander()
        value = expander.string(word)
        for item in items:
            if any(expander.matches(p, value) for p in item.patterns):
                return self.run_nested(parse(item.body))
        return 0

    def _trace(self, words: list[str]) -> None:
        if "xtrace" in self.state.options and words:
            self.fds[2].write(utilities.encode("+ " + " ".join(shlex.quote(w) for w in words) + "\n"))

    def dispatch(self, argv: list[str], assigned: dict[str, str]) -> int:
        """Run one command: a builtin, a utility, a shell script, or `external`. Every command
        line goes through here (also those xargs and find -exec make): it is counted and bounded."""
        self.shared.budget.command()
        limits.check_argv(argv)
        name = argv[0]
        if posixpath.dirname(name) in STANDARD_BIN and posixpath.basename(name) in ("env", "true", "false"):
            name = posixpath.basename(name)   # /usr/bin/env python3 app.py
        builtin = BUILTINS.get(name)
        if builtin:
            return builtin(self, argv[1:], assigned)
        if name in self.state.functions:
            return self._call_function(name, argv[1:])
        if name in UNSUPPORTED_BUILTINS:
            raise ShellError(f"the shell builtin '{name}' is not supported in RUN")
        env = self.state.environment() | assigned
        utility = find_utility(name)
        if utility:
            call = utilities.Call(name=posixpath.basename(name), args=argv[1:], root=self.shared.root,
                                  cwd=self.state.cwd, env=env, stdin=self.stdin.rest(), out=self.fds[1].write,
                                  err=self.fds[2].write, owners=self.shared.owners,
                                  run=lambda args: self.dispatch(args, {}))
            return utilities.run(utility, call)
        if is_shell(name):
            return self._sh(argv, env)
        script = shell_script(self.shared.root, self.state.cwd, self.state.vars.get("PATH", DEFAULT_PATH), name)
        if script is not None:
            if not script[1]:
                self.err(f"sh: {name}: Permission denied")
                return 126
            return self._sh([name, *script[2], script[0]] + argv[1:], env)
        log = self.shared.log
        # a program whose output is the build log, with someone watching the log, writes to it
        # as it runs (the log keeps its own head and tail of all of it), not when it ends
        live = self.fds[1] is log and self.fds[2] is log and log.echo is not None
        done = self.shared.external(Invocation(list(argv), env, self.state.cwd, self.stdin.rest(),
                                               log.write if live else None, self.fds[1].write, self.fds[2].write,
                                               self.stdin is self.shared.stdin))
        if not done.echoed:
            self.fds[1].write(done.stdout)
            self.fds[2].write(done.stderr)
        return done.exit_code

    def _call_function(self, name: str, args: list[str]) -> int:
        """A shell function: same state, its own $1..., `local` values restored on return."""
        program, body = self.state.functions[name]
        saved_args = self.state.positional
        self.state.positional = list(args)
        self.state.frames.append({})
        try:
            with self.shared.budget.nested(f"function {name}"):
                return self._child(program, state=self.state, fds=self.fds)._exec(body)
        except FunctionReturn as r:
            return r.code
        finally:
            self.state.positional = saved_args
            for var, value in self.state.frames.pop().items():
                if value is None:
                    self.state.vars.pop(var, None)
                else:
                    self.state.vars[var] = value

    def _sh(self, argv: list[str], env: dict[str, str]) -> int:
        """`sh -c script`, `bash -ex script.sh`, a `#!/bin/sh` script: a new shell, same rootfs."""
        args, options, command = argv[1:], set(), False
        while args and args[0][:1] in "-+" and args[0] not in ("-", "--", "+"):
            flag = args.pop(0)
            for letter in flag[1:]:
                if letter == "c":
                    command = True
                elif letter == "o" and args:
                    options.add(args.pop(0))
                elif letter in OPTION_LETTERS:
                    options.add(OPTION_LETTERS[letter])
                elif letter not in "ls":
                    raise ShellError(f"{argv[0]}: unsupported option '{flag[0]}{letter}'")
        if args and args[0] in ("-", "--"):
            args.pop(0)
        arg0, positional = argv[0], args[1:]
        if command:
            if not args:
                self.err(f"{argv[0]}: -c: option requires an argument")
                return 2
            text = args[0]
            arg0, positional = (args[1], args[2:]) if len(args) > 1 else (argv[0], [])
        elif args:
            arg0 = args[0]
            data = limits.read_guest(self.shared.root, posixpath.join(self.state.cwd, args[0]), limits.MAX_VALUE)
            if data is None:
                self.err(f"{argv[0]}: 0: cannot open {args[0]}: No such file")
                return 127
            text = utilities.decode(data)
        else:
            text = utilities.decode(self.stdin.rest())
        state = State(vars=dict(env), exported=set(env), cwd=self.state.cwd, options=options & OPTION_NAMES,
                       arg0=arg0, positional=list(positional))
        return self._child(parse(text), state=state, stdin=Input() if not args else None).run_protected()

    # -- redirections ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _redirected(self, redirects: list[Any]) -> Iterator[bool]:
        if not redirects:
            yield True
            return
        saved = (self.fds, self.stdin)
        opened: list[File] = []
        try:
            self.fds, self.stdin = dict(self.fds), self.stdin
            try:
                self._apply(redirects, opened)
            except RedirectError as e:
                saved[0][2].write(utilities.encode(f"sh: {e}\n"))
                yield False
                return
            yield True
        finally:
            for f in opened:
                f.close()
            self.fds, self.stdin = saved

    def _exec_redirections(self, redirects: list[Any]) -> int:
        """`exec 2>&1` and friends: redirections that last for the rest of the script."""
        opened: list[File] = []
        self.fds = dict(self.fds)
        try:
            self._apply(redirects, opened)
        except RedirectError as e:
            self.fds[2].write(utilities.encode(f"sh: {e}\n"))
            return 2
        finally:
            self.shared.persistent.extend(opened)
        return 0

    def _apply(self, redirects: list[Any], opened: list[File]) -> None:
        """Each redirection in turn, on this shell's own fds (a target's $(...) sees the earlier ones)."""
        for r in redirects:
            stdin = redirect(r, self.fds, program=self.program, expander=self._expander(), root=self.shared.root,
                             cwd=self.state.cwd, opened=opened)
            if stdin is not None:
                self.stdin = stdin

    # -- variables (the expansion Scope) ---------------------------------------------------
    def get(self, name: str) -> str | None:
        positional = self.state.positional
        if name in _SPECIALS:   # built only when asked for: "$@" may be megabytes
            if name in "@*":
                return " ".join(positional)
            return {"?": str(self.state.status), "$": "1", "#": str(len(positional)), "!": "",
                    "0": self.state.arg0,
                    "-": "".join(k for k, v in OPTION_LETTERS.items() if v in self.state.options)}[name]
        if name.isdigit():
            return positional[int(name) - 1] if int(name) <= len(positional) else None
        return self.state.vars.get(name)

    def arguments(self) -> list[str]:
        return list(self.state.positional)

    def assign(self, name: str, value: str) -> None:
        self.state.vars[name] = value

    def substitute(self, script: str) -> str:
        buffer = Buffer(limits.MAX_VALUE, "the output of $(...)")
        sub = self._child(parse(script), stdin=Input(), fds={1: buffer, 2: self.fds[2]})
        sub.tested = False
        self.subst_status = sub.run_protected()
        return utilities.decode(bytes(buffer.data)).rstrip("\n")

    def unset_error(self, name: str) -> None:
        if "nounset" in self.state.options:
            self.fds[2].write(utilities.encode(f"sh: {name}: parameter not set\n"))
            raise ShellExit(2)

    # -- the rest of the builtins' Context ----------------------------------------------------
    @property
    def root(self) -> Path:
        return self.shared.root

    def err(self, message: str) -> None:
        self.fds[2].write(utilities.encode(message + "\n"))

    def run_nested(self, program: Program) -> int:
        """Run `program` in this shell's state and output (eval, source, a case branch); `exit`
        still ends the whole script."""
        return self._child(program, state=self.state, fds=self.fds)._run_nested()

    def _run_nested(self) -> int:
        with self.shared.budget.nested("eval, source or a case branch"):
            for tree in self.program.trees:
                self._list([tree])
            return self.state.status

    def dispatch_in(self, state: State, argv: list[str]) -> int:
        return self._child(self.program, state=state, fds=self.fds).dispatch(argv, {})

    def which(self, name: str) -> str | None:
        path = self.state.vars.get("PATH", DEFAULT_PATH)
        found = utilities.lookup_path(self.shared.root, self.state.cwd, path, name)
        if found is None and (name in BUILTINS or name in self.state.functions or find_utility(name)):
            return name
        return found


_SPECIALS = frozenset("?$#!@*0-")


def _is_assignment(text: str) -> bool:
    name, eq, _ = text.partition("=")
    return bool(eq) and is_name(name)
