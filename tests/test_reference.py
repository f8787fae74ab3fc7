"""Image references by Docker's rules, and where credentials come from."""
from __future__ import annotations

import base64
import json
import stat

import pytest

from boxer_py.errors import BoxerError
from boxer_py.registry import credentials
from boxer_py.registry.distribution import Options, Registry
from boxer_py.registry.reference import Reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,expected", [
    ("localhost:5000/team/app:1.2", ("localhost:5000", "team/app", "1.2", "")),
    ("registry.example:5000/team/app", ("registry.example:5000", "team/app", "latest", "")),
    ("python", ("docker.io", "library/python", "latest", "")),
    ("python:3.12", ("docker.io", "library/python", "3.12", "")),
    ("someone/app:v1", ("docker.io", "someone/app", "v1", "")),
    ("index.docker.io/someone/app", ("docker.io", "someone/app", "latest", "")),
    (f"ghcr.io/org/app@{DIGEST}", ("ghcr.io", "org/app", "", DIGEST)),
    (f"ghcr.io/org/app:1@{DIGEST}", ("ghcr.io", "org/app", "1", DIGEST)),
    ("127.0.0.1:5000/a.b/c_d-e", ("127.0.0.1:5000", "a.b/c_d-e", "latest", "")),
])
def test_references_parse_like_docker(text, expected):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("text", ["App:1", "localhost:5000/", "x/../y", "app@sha256:12", "app:-bad", "a b",
                                  "localhost:5000/app:" + "t" * 200])
def test_bad_references_are_refused(text):
    with pytest.raises(BoxerError):
        Reference.parse(text)


def test_docker_hub_is_reached_at_its_api_host():
    assert Reference.parse("python").api_host == "registry-1.docker.io"
    assert str(Reference.parse("python")) == "docker.io/library/python:latest"


def test_plain_http_only_for_loopback_or_insecure():
    remote = Reference.parse("registry.example:5000/app")
    assert Registry(remote, "pull", None)._schemes() == ["https"]
    assert Registry(remote, "pull", None, Options(insecure=True))._schemes() == ["https", "http"]
    for host in ("localhost:5000", "127.0.0.1:5000"):
        assert Registry(Reference.parse(f"{host}/app"), "pull", None)._schemes() == ["https", "http"]


def test_credentials_boxer_store_first_then_docker_config(tmp_path):
    env = {"BOXER_CONFIG_DIR": str(tmp_path / "boxer"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    (tmp_path / "docker").mkdir()
    hub = base64.b64encode(b"hubuser:hubpass").decode()
    other = base64.b64encode(b"bob:pw:with:colons").decode()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": hub},
        "https://registry.example:5000": {"auth": other},
    }, "credsStore": "desktop"}))
    assert credentials.lookup("docker.io", env).username == "hubuser"
    found = credentials.lookup("registry.example:5000", env)
    assert (found.username, found.password) == ("bob", "pw:with:colons")
    assert credentials.lookup("elsewhere.example", env) is None
    path = credentials.save("registry.example:5000", credentials.Credential("carol", "s3cret"), env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.lookup("registry.example:5000", env).username == "carol"
    assert "s3cret" not in repr(credentials.lookup("registry.example:5000", env))
    assert credentials.remove("registry.example:5000", env)
    assert credentials.lookup("registry.example:5000", env).username == "bob"


def test_a_broken_credential_store_is_a_clear_error(tmp_path):
    env = {"BOXER_CONFIG_DIR": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "none")}
    (tmp_path / "auth.json").write_text("{not json")
    with pytest.raises(BoxerError, match="auth.json: cannot read credentials"):
        credentials.lookup("localhost:5000", env)
