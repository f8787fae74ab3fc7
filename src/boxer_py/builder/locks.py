"""`poetry install` and `pipenv install` for a RUN step: their lock files, read as data.

Poetry and Pipenv would resolve and install by running on the build host or in the guest;
neither can (the host must not run the project's tools, the guest has no network). Their
lock files already name every package and version, so they become one `pip install
--no-deps` of pinned requirements (markers kept, evaluated for the guest by pip.py), into the
environment the tool would have used: the image's Python, or the project's `.venv` when the
tool is configured to create it in the project (the usual Docker set-up).
"""
from __future__ import annotations

import json
import posixpath
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from boxer_py.errors import BuildError
from boxer_py.image import hostfs
from boxer_py.image.rootfs import resolve

MAX_LOCK_FILE = 16 << 20  # bytes of a poetry.lock, Pipfile.lock, pyproject.toml or Pipfile
MAX_LOCKED = 10_000  # packages of one lock file
_TRUE = ("1", "true", "yes", "on")


@dataclass
class Install:
    """What a tool's install comes to: pip's arguments and where they go."""

    args: list[str]
    venv: str | None = None  # a venv to make (if missing) and install into
    notes: list[str] = field(default_factory=list)


def read_text(root: Path, guest: str, what: str) -> str | None:
    """A small regular file of the image as text, or None if it does not exist."""
    try:
        return hostfs.read_file(resolve(root, guest), MAX_LOCK_FILE).decode("utf-8", errors="replace")
    except hostfs.Unreadable as e:
        if e.missing:
            return None
        raise BuildError(f"{what}: {guest} {e}") from None


def _toml(root: Path, guest: str, what: str) -> dict | None:
    text = read_text(root, guest, what)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{what}: {guest}: not valid TOML ({e})") from None


def _pinned(name: object, version: object, markers: object, what: str) -> str:
    if not isinstance(name, str) or not isinstance(version, str) or any(c in name + version for c in " ;\n\r\0"):
        raise BuildError(f"{what}: a locked package has no plain name and version ({name!r} {version!r})")
    line = f"{name}=={version.removeprefix('==')}"
    if isinstance(markers, str) and markers.strip():
        if any(c in markers for c in "\n\r\0"):
            raise BuildError(f"{what}: {name}: markers on more than one line")
        line += f" ; {markers}"
    return line


# --- poetry ----------------------------------------------------------------------------------------

def poetry(root: Path, args: list[str], env: dict[str, str], cwd: str) -> Install | str:
    """`poetry ARGS`: an Install, or (for `poetry config`) what it prints once done."""
    words = [a for a in args if a not in ("-n", "--no-interaction", "--no-ansi", "--ansi", "-q", "--quiet", "-v",
                                          "-vv", "-vvv", "--verbose")]
    if not words:
        raise BuildError("poetry: name a command (install, config)")
    if words[0] == "config":
        return _poetry_config(root, words[1:], env, cwd)
    if words[0] not in ("install", "sync"):
        raise BuildError(f"poetry {words[0]}: only `poetry install`, `poetry sync` and `poetry config` run at build "
                         "time (lock on the host and COPY poetry.lock in)")
    project = cwd
    lock = _toml(root, posixpath.join(project, "poetry.lock"), "poetry install")
    pyproject = _toml(root, posixpath.join(project, "pyproject.toml"), "poetry install") or {}
    if lock is None:
        raise BuildError(f"poetry install: no poetry.lock in {project}: run `poetry lock` on the host and COPY it in")
    groups, extras, root_package = {"main"}, set(), True
    it = iter(words[1:])
    for word in it:
        name, eq, value = word.partition("=")
        if name in ("--only", "--with", "--without", "-E", "--extras") and not eq:
            value = next(it, "")
        chosen = {v.strip() for v in value.split(",") if v.strip()}
        if name == "--only":
            groups = chosen
        elif name == "--with":
            groups |= chosen
        elif name == "--without":
            groups -= chosen
        elif name == "--no-dev":
            groups.discard("dev")
        elif name in ("-E", "--extras"):
            extras |= chosen
        elif name in ("--no-root", "--only-root", "--all-extras", "--sync", "--compile", "--no-cache",
                      "--no-directory", "--dry-run", "--all-groups"):
            root_package &= name != "--no-root"
            if name == "--all-groups":
                groups |= _poetry_groups(pyproject)
        else:
            raise BuildError(f"poetry install: option {word} is not supported at build time")
    if (pyproject.get("tool", {}).get("poetry", {}).get("package-mode") is False):
        root_package = False
    requirements = _poetry_locked(lock, pyproject, groups, extras)
    create = _poetry_setting(root, env, cwd, "virtualenvs.create", "POETRY_VIRTUALENVS_CREATE", True)
    in_project = _poetry_setting(root, env, cwd, "virtualenvs.in-project", "POETRY_VIRTUALENVS_IN_PROJECT", False)
    install = Install(["install", "--no-deps", *requirements, *(["."] if root_package else [])])
    if create and in_project:
        install.venv = posixpath.join(project, ".venv")
    elif create:
        install.notes.append("poetry install: the packages go to the image's Python (a venv in poetry's cache "
                             "would only be found through `poetry run`, which cannot run in the image)")
    return install


def _poetry_groups(pyproject: dict) -> set[str]:
    return {"main", *pyproject.get("tool", {}).get("poetry", {}).get("group", {})}


def _poetry_locked(lock: dict, pyproject: dict, groups: set[str], extras: set[str]) -> list[str]:
    what = "poetry install: poetry.lock"
    packages = lock.get("package", [])
    if not isinstance(packages, list) or len(packages) > MAX_LOCKED:
        raise BuildError(f"{what}: no list of at most {MAX_LOCKED} packages")
    by_name = {str(p.get("name", "")).lower().replace("_", "-"): p for p in packages if isinstance(p, dict)}
    if all("groups" in p or "category" in p for p in by_name.values()):
        # Lock format 2.1 (groups) and 1.x (category): each package says where it belongs.
        chosen = [p for p in by_name.values()
                  if set(p.get("groups") or [p.get("category", "main")]) & groups
                  and (not p.get("optional") or _wanted_by_extras(p, lock, extras))]
    else:
        chosen = _poetry_reachable(by_name, _poetry_direct(pyproject, groups), extras)
    lines = []
    for p in sorted(chosen, key=lambda p: str(p.get("name"))):
        markers = p.get("markers")
        if isinstance(markers, dict):  # lock format 2.1: markers per group
            markers = " or ".join(f"({m})" for g, m in markers.items() if g in groups) or None
        lines.append(_pinned(p.get("name"), p.get("version"), markers, what))
    return lines


def _wanted_by_extras(package: dict, lock: dict, extras: set[str]) -> bool:
    named = lock.get("extras", {})
    wanted = {str(n).split()[0].lower() for e in extras for n in (named.get(e) or [])}
    return str(package.get("name", "")).lower() in wanted


def _poetry_direct(pyproject: dict, groups: set[str]) -> set[str]:
    """The project's own dependencies in the chosen groups (PEP 621 and poetry's tables)."""
    names: set[str] = set()
    tool = pyproject.get("tool", {}).get("poetry", {})
    if "main" in groups:
        names |= {n for n in tool.get("dependencies", {}) if n.lower() != "python"}
        for spec in pyproject.get("project", {}).get("dependencies", []):
            names.add(_spec_name(spec))
    for group in groups - {"main"}:
        names |= set(tool.get("group", {}).get(group, {}).get("dependencies", {}))
        if group == "dev":
            names |= set(tool.get("dev-dependencies", {}))
    return {n.lower().replace("_", "-") for n in names if n}


def _spec_name(spec: object) -> str:
    text = str(spec)
    end = next((i for i, c in enumerate(text) if not (c.isalnum() or c in "-_.")), len(text))
    return text[:end]


def _poetry_reachable(by_name: dict[str, dict], direct: set[str], extras: set[str]) -> list[dict]:
    """Lock format 2.0 has no groups: walk the dependency graph from the project's own."""
    seen: set[str] = set()
    todo = sorted(direct)
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        for dep, spec in (by_name[name].get("dependencies") or {}).items():
            if isinstance(spec, dict) and spec.get("optional") and not extras:
                continue
            todo.append(str(dep).lower().replace("_", "-"))
    return [by_name[n] for n in sorted(seen)]


def _poetry_setting(root: Path, env: dict[str, str], cwd: str, key: str, variable: str, default: bool) -> bool:
    if variable in env:
        return env[variable].lower() in _TRUE
    section, _, name = key.partition(".")
    for guest in (posixpath.join(cwd, "poetry.toml"), _poetry_config_file(env)):
        value = (_toml(root, guest, "poetry") or {}).get(section, {}).get(name)
        if isinstance(value, bool):
            return value
    return default


def _poetry_config_file(env: dict[str, str]) -> str:
    return posixpath.join(env.get("HOME", "/root"), ".config", "pypoetry", "config.toml")


def _poetry_config(root: Path, words: list[str], env: dict[str, str], cwd: str) -> str:
    """`poetry config [--local] KEY VALUE`: written where poetry writes it, read back by install."""
    local = "--local" in words
    words = [w for w in words if w != "--local"]
    if len(words) != 2 or words[0] not in ("virtualenvs.create", "virtualenvs.in-project"):
        if len(words) == 2:
            return f"poetry config: {words[0]} has no effect at build time\n"
        raise BuildError("poetry config: expected KEY VALUE (virtualenvs.create or virtualenvs.in-project)")
    key, value = words
    if value.lower() not in ("true", "false", "1", "0"):
        raise BuildError(f"poetry config: {key}: expected true or false, not {value!r}")
    guest = posixpath.join(cwd, "poetry.toml") if local else _poetry_config_file(env)
    settings = _toml(root, guest, "poetry config") or {}
    section, _, name = key.partition(".")
    settings.setdefault(section, {})[name] = value.lower() in _TRUE
    host = resolve(root, guest, follow_last=False)
    host.parent.mkdir(parents=True, exist_ok=True)
    if host.is_symlink():
        host.unlink()
    host.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {str(v).lower()}\n" for k, v in sorted(t.items()))
                            for s, t in sorted(settings.items()) if isinstance(t, dict)))
    return ""


# --- pipenv ----------------------------------------------------------------------------------------

def pipenv(root: Path, args: list[str], env: dict[str, str], cwd: str) -> Install:
    """`pipenv install|sync`: Pipfile.lock's packages (or Pipfile's, unlocked)."""
    words = [a for a in args if a not in ("--no-site-packages", "--site-packages", "-v", "--verbose", "-q",
                                          "--quiet", "--bare", "--clear")]
    if not words or words[0] not in ("install", "sync"):
        raise BuildError("pipenv: only `pipenv install` and `pipenv sync` run at build time")
    system = dev = False
    for word in words[1:]:
        if word == "--system":
            system = True
        elif word in ("--dev", "-d"):
            dev = True
        elif word in ("--deploy", "--ignore-pipfile", "--skip-lock", "--keep-outdated", "--selective-upgrade"):
            continue
        else:
            raise BuildError(f"pipenv install: {word}: only the Pipfile's packages install at build time "
                             "(add packages to the Pipfile and lock it on the host)")
    text = read_text(root, posixpath.join(cwd, "Pipfile.lock"), "pipenv install")
    if text is not None:
        requirements = _pipfile_locked(text, dev)
    else:
        pipfile = _toml(root, posixpath.join(cwd, "Pipfile"), "pipenv install")
        if pipfile is None:
            raise BuildError(f"pipenv install: no Pipfile.lock or Pipfile in {cwd}")
        requirements = _pipfile_packages(pipfile, dev)
    install = Install(["install", *(["--no-deps"] if text is not None else []), *requirements])
    if not system:
        if env.get("PIPENV_VENV_IN_PROJECT", "").lower() in _TRUE:
            install.venv = posixpath.join(cwd, ".venv")
        else:
            install.notes.append("pipenv install: the packages go to the image's Python (set PIPENV_VENV_IN_PROJECT"
                                 "=1 for a .venv in the project; `pipenv run` cannot run in the image)")
    return install


def _pipfile_locked(text: str, dev: bool) -> list[str]:
    what = "pipenv install: Pipfile.lock"
    try:
        lock = json.loads(text)
    except ValueError as e:
        raise BuildError(f"{what}: not valid JSON ({e})") from None
    sections = [lock.get("default") or {}] + ([lock.get("develop") or {}] if dev else [])
    if not all(isinstance(s, dict) for s in sections) or sum(len(s) for s in sections) > MAX_LOCKED:
        raise BuildError(f"{what}: no table of at most {MAX_LOCKED} packages")
    lines = []
    for section in sections:
        for name, entry in sorted(section.items()):
            if not isinstance(entry, dict) or "version" not in entry:
                raise BuildError(f"{what}: {name}: only packages from an index can be installed "
                                 "(a path, VCS or file entry would be built on the host)")
            lines.append(_pinned(name, entry["version"], entry.get("markers"), what))
    return lines


def _pipfile_packages(pipfile: dict, dev: bool) -> list[str]:
    lines = []
    for section in ["packages"] + (["dev-packages"] if dev else []):
        for name, spec in sorted((pipfile.get(section) or {}).items()):
            if isinstance(spec, dict):
                if set(spec) - {"version", "markers", "extras", "index"}:
                    raise BuildError(f"pipenv install: Pipfile: {name}: only packages from an index can be installed")
                extras = ",".join(spec.get("extras") or [])
                version = str(spec.get("version", "*"))
                line = f"{name}{f'[{extras}]' if extras else ''}{'' if version == '*' else version}"
                lines.append(line + (f" ; {spec['markers']}" if spec.get("markers") else ""))
            else:
                lines.append(f"{name}{'' if str(spec) == '*' else spec}")
    if not lines:
        raise BuildError("pipenv install: the Pipfile names no package")
    return lines
