"""A run made ready ahead for one request may serve another (cli/ahead.py): only one that
differs from it in the command's arguments alone, everything else byte for byte the same."""
from __future__ import annotations

from boxer_py.cli import client
from boxer_py.cli.ahead import another

ENV = {b"PATH": b"/usr/bin", b"SECRET": b"a"}


def _request(args: list[str], cwd: str = "/work", umask: int = 0o022, env: dict[bytes, bytes] = ENV,
             key: str = "key") -> bytes:
    return client.encode(key, cwd, umask, args, env)


def test_only_the_commands_arguments_may_differ():
    ready = client.decode(_request(["run", "img.wasm", "python", "-c", "print(1)"])[4:])
    assert another(ready, _request(["run", "img.wasm", "python", "-c", "print(2)", "x"])) == ("python", "-c",
                                                                                              "print(2)", "x")
    assert another(ready, _request(["run", "img.wasm", "python"])) == ("python",)
    for other in (
        _request(["run", "img.wasm", "python", "-c", "print(2)"], env={**ENV, b"SECRET": b"b"}),
        _request(["run", "img.wasm", "python", "-c", "print(2)"], env={b"PATH": b"/usr/bin"}),
        _request(["run", "img.wasm", "python", "-c", "print(2)"], cwd="/elsewhere"),
        _request(["run", "img.wasm", "python", "-c", "print(2)"], umask=0o077),
        _request(["run", "img.wasm", "python", "-c", "print(2)"], key="another server's"),
        _request(["run", "other.wasm", "python", "-c", "print(2)"]),
        _request(["run", "img.wasm", "python3", "-c", "print(2)"]),  # another program word
        _request(["run", "img.wasm"]),  # the image's own command
        _request(["run", "-e", "A=1", "img.wasm", "python", "-c", "print(2)"]),
        _request(["run", "img.wasm", "python", "-c", "print(2)"])[:-1],  # cut short
        b"\0\0\0\5junk!",
    ):
        assert another(ready, other) is None, other


def test_a_request_for_the_images_own_command_has_no_other():
    ready = client.decode(_request(["run", "img.wasm"])[4:])
    assert another(ready, _request(["run", "img.wasm", "python", "-c", "pass"])) is None
