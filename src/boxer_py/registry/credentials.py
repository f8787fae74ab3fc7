"""Registry credentials: boxer's own store (written by `boxer login`) and Docker's.

boxer's store is `$BOXER_CONFIG_DIR/auth.json` (default `~/.config/boxer/auth.json`), in
Docker's `auths` shape, written with mode 0600 through a temp file and rename. Docker's
`~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`) is read, never written: its
`auths` entries with a base64 `auth` (or `username`/`password`) are used; credential helpers
(`credsStore`, `credHelpers`) are not run.
"""
from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from boxer_py.errors import BoxerError
from boxer_py.image import atomic
from boxer_py.registry.reference import DOCKER_HUB

_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")


@dataclass(frozen=True)
class Credential:
    username: str
    password: str
    source: str = ""

    def __repr__(self) -> str:
        return f"Credential({self.username!r}, ***, source={self.source!r})"


def boxer_store(env: Mapping[str, str] | None = None) -> Path:
    variables: Mapping[str, str] = os.environ if env is None else env
    if variables.get("BOXER_CONFIG_DIR"):
        return Path(variables["BOXER_CONFIG_DIR"]) / "auth.json"
    base = variables.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "boxer" / "auth.json"


def docker_store(env: Mapping[str, str] | None = None) -> Path:
    variables: Mapping[str, str] = os.environ if env is None else env
    return Path(variables.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _key(server: str) -> str:
    """`https://host:port/v1/` and `host:port` name the same registry."""
    host = server.split("://", 1)[-1].split("/", 1)[0]
    return DOCKER_HUB if server in _HUB_KEYS or host in _HUB_KEYS else host


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise BoxerError(f"{path}: cannot read credentials ({getattr(e, 'strerror', None) or e})") from None
    return doc if isinstance(doc, dict) else {}


def _decode(entry: dict, source: str) -> Credential | None:
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise BoxerError(f"{source}: the auth entry is not base64 of user:password") from None
        return Credential(user, password, source) if sep else None
    if entry.get("username") and entry.get("password"):
        return Credential(entry["username"], entry["password"], source)
    return None


def lookup(registry: str, env: dict[str, str] | None = None) -> Credential | None:
    """boxer's own login first, then Docker's config."""
    want = _key(registry)
    for path in (boxer_store(env), docker_store(env)):
        for server, entry in (_load(path).get("auths") or {}).items():
            if _key(server) == want and isinstance(entry, dict):
                found = _decode(entry, str(path))
                if found:
                    return found
    return None


def save(registry: str, credential: Credential, env: dict[str, str] | None = None) -> Path:
    return _update(registry, credential, env)


def remove(registry: str, env: dict[str, str] | None = None) -> bool:
    path = boxer_store(env)
    had = _key(registry) in {_key(s) for s in (_load(path).get("auths") or {})}
    if had:
        _update(registry, None, env)
    return had


def _update(registry: str, credential: Credential | None, env: dict[str, str] | None) -> Path:
    path = boxer_store(env)
    doc = _load(path)
    auths = {s: e for s, e in (doc.get("auths") or {}).items() if _key(s) != _key(registry)}
    if credential is not None:
        token = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
        auths[_key(registry)] = {"auth": token}
    doc["auths"] = auths
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic.write_file(path, json.dumps(doc, indent=2).encode(), mode=0o600)
    return path
