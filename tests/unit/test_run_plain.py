"""A served `boxer run IMAGE COMMAND...` with no option before IMAGE skips click's parsing
(cli/run.plain): what it hands the command must be what click's parsing gives, word for word,
and any other command line must still go through click."""
from __future__ import annotations

import pytest

from boxer_py.cli.common import cli
from boxer_py.cli.run import plain, run_defaults


def parsed(args: list[str]) -> dict[str, object]:
    """The parameters click gives `run` for `boxer ARGS`."""
    with cli.make_context("boxer", list(args)) as root:
        name, command, rest = cli.resolve_command(root, [*root._protected_args, *root.args])
        assert command is not None and name == "run"
        return command.make_context(name, rest, parent=root).params


@pytest.mark.parametrize("args", [
    ["run", "hello"],
    ["run", "hello", "python", "-c", "pass"],
    ["run", "./images/app.wasm", "--", "x"],
    ["run", "hello", "-it", "--timeout", "1", "--help"],  # after IMAGE: the command's, not options
    ["run", "localhost:5000/app:1", "sh", "-c", "echo $HOME"],
    ["run", "hello", "python", "-h"],
])
def test_plain_gives_what_click_parses(args):
    assert plain(args, run_defaults()) == parsed(args)


@pytest.mark.parametrize("args", [
    ["run"], ["run", "--timeout", "1", "hello"], ["run", "-e", "A=1", "hello", "x"], ["run", "--help"],
    ["run", "-", "x"], ["run", "--", "hello"], ["images"], ["--version", "run", "hello"],
])
def test_anything_else_goes_through_click(args):
    assert plain(args, run_defaults()) is None
