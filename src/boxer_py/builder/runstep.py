"""RUN at build time, against a stage's rootfs.

There is no fork/exec in WASI and no native binary can run, so the builder is the shell
(`shell.py` interprets the script and its file utilities). The commands the shell does not
implement come here: a WebAssembly program of the image runs under Wasmtime with the rootfs
as `/` (read-write), `pip install` runs the host's pip for the guest's interpreter, and
native tools are refused with what to do instead.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from boxer_py.builder import locks, osdeps, venv
from boxer_py.builder.guestpython import GuestPython, PipRefused, guest_python, marker_environment, python_version
from boxer_py.builder.pip import pip
from boxer_py.builder.sdist import Sandbox, with_setuptools
from boxer_py.builder.wheelcheck import SourceRefused
from boxer_py.dockerfile.plan import RunStep
from boxer_py.errors import BoxerError, BuildError, RunError
from boxer_py.image.config import DEFAULT_PATH, user_env
from boxer_py.image.rootfs import resolve
from boxer_py.shell.interpreter import Completed, Invocation, ShellResult, run_script


class Ran(Protocol):
    """What the build reads of a program's run (the runtime's RunResult has these and more)."""
    exit_code: int
    stdout: bytes
    stderr: bytes
    trap: str | None


# (root, argv, env, workdir, stdin) -> the run's result: the runtime's Launcher.run_in, injected.
class Runner(Protocol):
    """(root, argv, env, workdir, stdin) -> the run's result; `tap` is told the program's
    stdout and stderr as it writes them (the build's progress streams a RUN's output)."""

    def __call__(self, root: Path, argv: list[str], env: dict[str, str], workdir: str, stdin: bytes, /, *,
                 tap: Callable[[bytes], None] | None = None) -> Ran: ...

_NO_PACKAGES = "there are no OS packages in a WebAssembly image: install Python packages with pip, or COPY files in"
_NO_NETWORK = "the build has no network: download on the host and COPY or ADD the file"
_NO_COMPILER = ("native code cannot run in WebAssembly: compile to wasm32-wasi on the host "
                "(e.g. zig cc -target wasm32-wasi) and COPY the .wasm in")
NATIVE_TOOLS = {
    **dict.fromkeys(["apt-get", "apt", "aptitude", "dpkg", "apk", "yum", "dnf", "microdnf", "rpm", "zypper",
                     "pacman", "brew", "conda", "mamba", "micromamba"], _NO_PACKAGES),
    **dict.fromkeys(["curl", "wget", "git", "ssh", "scp", "rsync", "nc"], _NO_NETWORK),
    **dict.fromkeys(["gcc", "g++", "cc", "c++", "clang", "make", "cmake", "ninja", "cargo", "rustc", "go",
                     "ld", "gfortran"], _NO_COMPILER),
    **dict.fromkeys(["node", "npm", "npx", "yarn", "pnpm"], "there is no Node.js runtime among the WebAssembly "
                    "bases: build the front-end on the host and COPY the result"),
    **dict.fromkeys(["systemctl", "service", "sudo", "su", "locale-gen", "update-ca-certificates", "ldconfig"],
                    "a WebAssembly image has no services, users to switch to or system configuration; remove it"),
}


def _python_module(argv: list[str]) -> tuple[str, int] | None:
    """(MODULE, where its arguments start) for `python [options] -m MODULE ...`."""
    if not re.fullmatch(r"python[0-9.]*", posixpath.basename(argv[0])):
        return None
    at = venv.module_after_options(argv)
    return (argv[at + 1], at + 2) if at else None


@dataclass
class Commands:
    """What the shell calls for a command it does not implement itself."""

    root: Path
    runner: Runner
    skip_unsupported: bool = False
    warn: Callable[[str], None] = lambda _: None
    status: Callable[[str], None] | None = None  # a terminal's transient line: pip's downloads
    labels: dict[str, str] = field(default_factory=dict)  # the stage's: which Python pip installs for
    # What pip found no usable wheel for, told to the build (which may plan the stage on the
    # runtime that has it compiled in: pipeline.py).
    native: list[str] = field(default_factory=list)

    def __call__(self, inv: Invocation) -> Completed:
        name = posixpath.basename(inv.argv[0])
        module, at = _python_module(inv.argv) or ("", 0)
        if re.fullmatch(r"pip(3(\.\d+)?)?", name) or module == "pip":
            return self._pip(inv, inv.argv[at or 1:])
        if name.startswith("python") and inv.argv[1:3] == ["setup.py", "install"]:
            return self._pip(inv, ["install", "."])  # built in the sandbox as `pip install .` would (sdist.py)
        if name.startswith("python") and inv.argv[1:2] == ["setup.py"]:
            return self._setup_py(inv)
        if name in ("poetry", "pipenv"):
            return self._locked(inv, name)
        if module == "ensurepip":
            return Completed(0, b"ensurepip: nothing to do: boxer runs pip for the image on the build host\n")
        if module == "venv":
            interpreter = inv.argv[0] if "/" in inv.argv[0] else venv.found(
                self.root, inv.argv[0], inv.env.get("PATH", DEFAULT_PATH), inv.cwd)
            if interpreter is not None:
                try:
                    version = self._python(inv, inv.argv[0])[0]
                except PipRefused as e:
                    raise BuildError(str(e).replace("pip install", "python -m venv")) from None
                venv.create(self.root, inv.argv[at:], interpreter, version, inv.cwd)
                return Completed(0)
        if name in osdeps.MANAGERS and (decided := osdeps.decide(inv.argv)) is not None:
            return self._os_packages(name, decided)
        if name in NATIVE_TOOLS:
            if self.skip_unsupported:
                self.warn(f"skipped {name}: {NATIVE_TOOLS[name]}")
                return Completed(0)
            raise BuildError(f"{name} cannot run in a WebAssembly build: {NATIVE_TOOLS[name]} "
                             "(or build with --skip-unsupported to skip such commands)")
        try:
            streamed = {"tap": inv.echo} if inv.echo is not None else {}
            result = self.runner(self.root, inv.argv, inv.env, inv.cwd, inv.stdin, **streamed)
        except RunError as e:
            return Completed(e.exit_code, stderr=f"sh: {e}\n".encode())
        trap = f"{name}: {result.trap}\n".encode() if result.trap else b""
        if inv.echo is not None and trap:
            inv.echo(trap)
        return Completed(result.exit_code, result.stdout, result.stderr + trap, echoed=inv.echo is not None)

    def _os_packages(self, name: str, decided: osdeps.Decision) -> Completed:
        """apt-get/apk: packages that only serve compiling are skipped with a warning; a package
        the image would need at run time is refused, naming it (osdeps.py)."""
        command = f"{name} {decided.subcommand}"
        if decided.refused and not self.skip_unsupported:
            raise BuildError(f"{name} cannot run in a WebAssembly build to install {', '.join(decided.refused)}: "
                             f"{NATIVE_TOOLS[name]} (or build with --skip-unsupported to skip such commands)")
        if decided.refused:
            self.warn(f"skipped {command} {', '.join(decided.refused)}: {NATIVE_TOOLS[name]}")
        if decided.skipped:
            self.warn(f"skipped {command} {decided.note}")
        if decided.refused or decided.skipped:
            return Completed(0)
        return Completed(0, f"{command}: nothing to do: a WebAssembly image has no OS packages\n".encode())

    def _python(self, inv: Invocation, python: str) -> tuple[str, GuestPython | None]:
        """The version of the interpreter `python` names and its (version, site-packages) as its
        base's labels say, whatever ENV says (guest_python); without them (an image of an older
        boxer), the version from PYTHON_VERSION and None."""
        found = guest_python(self.root, self.labels, python, inv.env.get("PATH", DEFAULT_PATH), inv.cwd)
        return (found[0] if found else python_version(inv.env)), found

    def _pip(self, inv: Invocation, args: list[str]) -> Completed:
        """pip for the image, into the site-packages of the venv it belongs to, if any."""
        path = inv.env.get("PATH", DEFAULT_PATH)
        which = (venv.of_program(self.root, posixpath.normpath(posixpath.join(inv.cwd, inv.argv[0])))
                 if "/" in inv.argv[0] else venv.active(self.root, inv.argv[0], path, inv.cwd))
        name = posixpath.basename(inv.argv[0])
        try:
            version, guest = self._python(inv, inv.argv[0] if name.startswith("python") else "python" + name[3:])
            site = venv.site_packages(which, version) if which else None
            done = pip(args, self.root, inv.env, inv.cwd, Sandbox(self.root, self.runner, inv.env), site,
                       self.status, guest)
        except PipRefused as e:
            raise BuildError(str(e)) from None
        self.native.extend(done.native)
        return Completed(done.exit_code, done.output)

    def _setup_py(self, inv: Invocation) -> Completed:
        """`python setup.py sdist|bdist_wheel|...` with setuptools on hand (sdist.with_setuptools)."""
        try:
            version = self._python(inv, inv.argv[0])[0]
            result = with_setuptools(Sandbox(self.root, self.runner, inv.env), inv.argv, inv.cwd, version,
                                     marker_environment(version))
        except (PipRefused, SourceRefused) as e:
            raise BuildError(f"python setup.py: {str(e).removeprefix('pip install: ')}") from None
        except RunError as e:
            return Completed(e.exit_code, stderr=f"sh: {e}\n".encode())
        return Completed(result.exit_code, result.stdout, result.stderr)

    def _locked(self, inv: Invocation, tool: str) -> Completed:
        """poetry/pipenv install: their lock file's packages through pip (locks.py)."""
        done = (locks.poetry if tool == "poetry" else locks.pipenv)(self.root, inv.argv[1:], inv.env, inv.cwd)
        if isinstance(done, str):
            return Completed(0, done.encode())
        site = None
        try:
            version, guest = self._python(inv, "python3")
            if done.venv:
                interpreter = venv.found(self.root, "python3", inv.env.get("PATH", DEFAULT_PATH), inv.cwd)
                if interpreter is None:
                    raise BuildError(f"{tool} install: no python3 on PATH to make {done.venv} with")
                if venv.of_program(self.root, posixpath.join(done.venv, "bin", "python")) is None:
                    venv.create(self.root, [done.venv], interpreter, version, inv.cwd)
                site = venv.site_packages(done.venv, version)
            result = pip(done.args, self.root, inv.env, inv.cwd, Sandbox(self.root, self.runner, inv.env), site,
                         self.status, guest)
        except PipRefused as e:
            raise BuildError(str(e).replace("pip install", f"{tool} install", 1)) from None
        self.native.extend(result.native)
        return Completed(result.exit_code, "".join(f"{n}\n" for n in done.notes).encode() + result.output)


def execute(step: RunStep, root: Path, commands: Commands, echo: Callable[[bytes], None] | None = None) -> ShellResult:
    """Run one RUN step the way `/bin/sh -c` (shell form) or exec (exec form) would; `echo`
    gets the step's output as each command writes it."""
    env = dict(step.env)
    env.setdefault("PATH", DEFAULT_PATH)
    for name, value in user_env(step.user).items():
        env.setdefault(name, value)
    resolve(root, step.workdir).mkdir(parents=True, exist_ok=True)
    # Exec form is one command with its argv as written: quoted so that nothing expands, it
    # goes through the same interpreter, whose utilities (mkdir, sh -c...) then work there too.
    if step.argv is not None:
        script = shlex.join(step.argv)
    else:
        assert step.script is not None, "a RUN step has an argv (exec form) or a script (shell form)"
        script = step.script
    try:
        return run_script(script, root=root, env=env, cwd=step.workdir, external=commands, echo=echo)
    except BoxerError:
        raise
    except OSError as e:
        raise BuildError(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")) from None
