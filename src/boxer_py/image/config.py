"""The image config: what a run starts with. Field names follow the OCI image spec."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

# The PATH a program is looked up on when the image sets none: Docker's default.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def is_root(user: str) -> bool:
    """Whether a USER value (name, uid, name:group or uid:gid) runs as root, as Docker reads it."""
    return user.partition(":")[0] in ("", "root", "0")


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
        return out

    @classmethod
    def from_oci(cls, data: dict) -> ImageConfig:
        return cls(
            entrypoint=tuple(data.get("Entrypoint") or ()),
            cmd=tuple(data.get("Cmd") or ()),
            env=tuple(data.get("Env") or ()),
            working_dir=data.get("WorkingDir") or "/",
            user=data.get("User") or "",
            labels=dict(data.get("Labels") or {}),
            exposed_ports=tuple(data.get("ExposedPorts") or ()),
            volumes=tuple(data.get("Volumes") or ()),
            stop_signal=data.get("StopSignal") or "",
        )


@dataclass(frozen=True)
class ImageSpec:
    """The whole OCI-style config document: the run config plus the rootfs and its history."""

    config: ImageConfig
    diff_ids: tuple[str, ...] = ()
    history: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        doc = {
            "architecture": "wasm",
            "os": "wasip1",
            "config": self.config.to_oci(),
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": [{"created_by": h} for h in self.history],
        }
        return json.dumps(doc, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ImageSpec:
        doc = json.loads(raw)
        return cls(
            ImageConfig.from_oci(doc.get("config") or {}),
            tuple(doc.get("rootfs", {}).get("diff_ids") or ()),
            tuple(h.get("created_by", "") for h in doc.get("history") or ()),
        )
