"""The image config: what a run starts with. Field names follow the OCI image spec."""
from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

# The PATH a program is looked up on when the image sets none: Docker's default.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def is_root(user: str) -> bool:
    """Whether a USER value (name, uid, name:group or uid:gid) runs as root, as Docker reads it."""
    return user.partition(":")[0] in ("", "root", "0")


ALIAS_LABEL = "boxer.alias:"  # boxer.alias:GUEST=DIR: the image's DIR shown at GUEST too (runtime/reactor.py)


def alias_labels(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(GUEST, DIR) of each `boxer.alias:GUEST=DIR` label, sorted, both normalised: GUEST an
    absolute path other than `/` (labels naming another are ignored, as Docker ignores labels
    it does not know), DIR made absolute. Whether DIR is a directory is the reader's question."""
    out = []
    for key, target in sorted(labels.items()):
        if not key.startswith(ALIAS_LABEL):
            continue
        guest = posixpath.normpath(key[len(ALIAS_LABEL):])
        if guest.startswith("/") and not guest.startswith("//") and guest != "/":
            out.append((guest, posixpath.normpath("/" + target.lstrip("/"))))
    return out


def user_env(user: str) -> dict[str, str]:
    """What a run as USER `user` starts with unless its environment says otherwise: HOME, and
    for a user other than root BOXER_USER, from which the python bases' os.getuid, getpass
    and pwd answer (WASI has no users; toolchain/runtimes/guest/sitecustomize.py)."""
    if is_root(user):
        return {"HOME": "/root"}
    return {"HOME": "/", "BOXER_USER": user}


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = "/"
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    # Docker's HealthConfig: {"Test": [...], "Interval": ns, "Timeout": ns, "StartPeriod": ns,
    # "StartInterval": ns, "Retries": n}, zero fields left out; {} when the image sets none.
    healthcheck: dict = field(default_factory=dict)
    shell: tuple[str, ...] = ()  # SHELL: what shell-form RUN, CMD and ENTRYPOINT run under
    on_build: tuple[str, ...] = ()  # ONBUILD triggers, as written

    def env_dict(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.env)

    def with_env(self, key: str, value: str) -> ImageConfig:
        """Set one variable, keeping its position if it was already set (as Docker does)."""
        items = self.env_dict()
        items[key] = value
        return replace(self, env=tuple(f"{k}={v}" for k, v in items.items()))

    def to_oci(self) -> dict:
        out: dict = {"Env": list(self.env), "WorkingDir": self.working_dir}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.user:
            out["User"] = self.user
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.healthcheck:
            out["Healthcheck"] = {k: (list(v) if k == "Test" else v) for k, v in self.healthcheck.items()}
        if self.shell:
            out["Shell"] = list(self.shell)
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        return out

    @classmethod
    def from_oci(cls, data: dict) -> ImageConfig:
        """Read (and check) a config an image or a registry gave: raises ValueError, saying
        what is wrong, for anything a run could not use as it is (see _strings)."""
        if not isinstance(data, dict):
            raise ValueError("the config is not an object")
        env = _strings(data, "Env")
        for e in env:
            if "=" not in e or e.startswith("="):
                raise ValueError(f"Env entry {e[:40]!r} is not NAME=VALUE")
        working_dir = _string(data, "WorkingDir") or "/"
        if len(working_dir.encode()) > MAX_WORKDIR or working_dir.count("/") > MAX_WORKDIR_DEPTH:
            raise ValueError(f"WorkingDir is longer than {MAX_WORKDIR} bytes or {MAX_WORKDIR_DEPTH} levels")
        labels = data.get("Labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError("Labels is not an object of strings")
        return cls(
            entrypoint=_strings(data, "Entrypoint"),
            cmd=_strings(data, "Cmd"),
            env=env,
            working_dir=working_dir,
            user=_string(data, "User"),
            labels=dict(labels),
            exposed_ports=_strings(data, "ExposedPorts"),
            volumes=_strings(data, "Volumes"),
            stop_signal=_string(data, "StopSignal"),
            healthcheck=_healthcheck(data.get("Healthcheck")),
            shell=_strings(data, "Shell"),
            on_build=_strings(data, "OnBuild"),
        )


MAX_WORKDIR = 1024  # bytes of an image's WorkingDir
MAX_WORKDIR_DEPTH = 128  # its levels
_FIELD_CHARS = 1 << 20  # bytes of any one string in a config


_HEALTH_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def _healthcheck(value: object) -> dict:
    """A Healthcheck object as Docker writes it: Test a list of strings, the durations and
    Retries non-negative integers (a 64-bit count of nanoseconds at most); nothing else."""
    if not value:
        return {}
    if not isinstance(value, dict) or not set(value) <= {"Test", *_HEALTH_DURATIONS, "Retries"}:
        raise ValueError("Healthcheck is not an object of Test, Interval, Timeout, StartPeriod, StartInterval, Retries")
    out: dict = {}
    if "Test" in value:
        out["Test"] = _strings(value, "Test")
    for key in (*_HEALTH_DURATIONS, "Retries"):
        number = value.get(key, 0)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**63:
            raise ValueError(f"Healthcheck {key} is not a non-negative integer")
        if number:
            out[key] = number
    return out


def _string(data: dict, key: str) -> str:
    value = data.get(key) or ""
    if not isinstance(value, str) or "\0" in value or len(value) > _FIELD_CHARS:
        raise ValueError(f"{key} is not a string")
    return value


def _strings(data: dict, key: str) -> tuple[str, ...]:
    """A list of strings (or, for OCI's sets such as ExposedPorts, an object's keys)."""
    value = data.get(key) or ()
    if isinstance(value, dict):
        value = list(value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and "\0" not in v for v in value):
        raise ValueError(f"{key} is not a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class History:
    """One entry of an image's history. `empty_layer` marks instructions that made no layer
    (ENV, CMD, LABEL...), as Docker marks them: history and scanner tools pair the other entries
    with `rootfs.diff_ids`, in order."""

    created_by: str
    empty_layer: bool = False

    def to_json(self) -> dict:
        return {"created_by": self.created_by, **({"empty_layer": True} if self.empty_layer else {})}


@dataclass(frozen=True)
class ImageSpec:
    """The whole OCI-style config document: the run config plus the rootfs and its history."""

    config: ImageConfig
    diff_ids: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    author: str = ""  # MAINTAINER, recorded where BuildKit records it: the document's "author"

    def __post_init__(self) -> None:
        # A plain string is an entry that made a layer (what images before the markers said).
        if any(not isinstance(h, History) for h in self.history):
            object.__setattr__(self, "history", tuple(h if isinstance(h, History) else History(str(h))
                                                      for h in self.history))

    def to_json(self) -> bytes:
        doc = {
            "architecture": "wasm",
            "os": "wasip1",
            "config": self.config.to_oci(),
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": [h.to_json() for h in self.history],
        }
        if self.author:
            doc["author"] = self.author
        return json.dumps(doc, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ImageSpec:
        """The one place an image's config is read (image files, pulls): raises ValueError."""
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("the config is not an object")
        rootfs = doc.get("rootfs") or {}
        history = doc.get("history") or []
        if not isinstance(rootfs, dict) or not isinstance(history, list) \
                or not all(isinstance(h, dict) and isinstance(h.get("created_by", ""), str)
                           and isinstance(h.get("empty_layer", False), bool) for h in history):
            raise ValueError("rootfs or history is malformed")
        return cls(
            ImageConfig.from_oci(doc.get("config") or {}),
            _strings(rootfs, "diff_ids"),
            tuple(History(h.get("created_by", ""), h.get("empty_layer", False)) for h in history),
            _string(doc, "author"),
        )
