"""The Dockerfile frontend in memory: text -> typed instructions -> plan. No files, no engine."""
from __future__ import annotations

import pytest

from boxer_py.dockerfile import instructions as ins
from boxer_py.dockerfile.bases import load_catalog
from boxer_py.dockerfile.parser import parse
from boxer_py.dockerfile.plan import CopyStep, MkdirStep, RunStep, make_plan
from boxer_py.errors import DockerfileError

CATALOG = load_catalog()


def plan_of(text: str, **kwargs):
    return make_plan(parse(text), CATALOG, kwargs.pop("build_args", None), kwargs.pop("target", None),
                     lambda ref: None)


def test_instructions_carry_their_lines_and_continuations_join():
    df = parse("# syntax=docker/dockerfile:1\nFROM python:3.12 AS app\n\nRUN echo a \\\n    && echo b\nCMD [\"python\"]\n")
    kinds = [(type(i).__name__, i.line) for i in df.instructions]
    assert kinds == [("From", 2), ("Run", 4), ("Cmd", 6)]
    run = df.instructions[1]
    assert isinstance(run, ins.Run) and run.shell and "echo a" in run.command[0] and "echo b" in run.command[0]


def test_exec_and_shell_forms():
    df = parse('FROM scratch\nENTRYPOINT ["/app.wasm", "--flag"]\nCMD serve --port 8000\n')
    entry, cmd = df.instructions[1], df.instructions[2]
    assert entry == ins.Entrypoint(2, ("/app.wasm", "--flag"), False)
    assert cmd.shell and cmd.argv == ("serve --port 8000",)


def test_copy_flags_and_env_pairs():
    df = parse('FROM scratch\nCOPY --chown=1000:1000 --chmod=755 a.py b.py /app/\nENV A=1 B="two words"\n')
    copy, env = df.instructions[1], df.instructions[2]
    assert copy.sources == ("a.py", "b.py") and copy.dest == "/app/"
    assert copy.chown == "1000:1000" and copy.chmod == "755"
    assert env.pairs == (("A", "1"), ("B", "two words"))


@pytest.mark.parametrize("text, where", [
    ("FROM scratch\nFROB x\n", "Dockerfile:2:"),
    ("FROM scratch\nCOPY --bogus=1 a /a\n", "Dockerfile:2:"),
    ("FROM scratch\nENV\n", "Dockerfile:2:"),
    ("RUN echo before any FROM\n", "Dockerfile:1:"),
])
def test_bad_lines_are_one_line_errors_naming_the_line(text, where):
    with pytest.raises(DockerfileError) as e:
        plan_of(text)
    message = str(e.value)
    assert where in message and "\n" not in message


def test_plan_expands_args_and_env_per_docker_rules():
    plan = plan_of('ARG V=3.12\nFROM python:${V}\nARG NAME=world\nENV GREETING="hello $NAME" HOME_DIR=/app\n'
                   'WORKDIR $HOME_DIR\nRUN echo $GREETING\n', build_args={"NAME": "boxer"})
    stage = plan.stages[plan.target]
    env = stage.config.env_dict()
    assert env["GREETING"] == "hello boxer"
    assert stage.config.working_dir == "/app"
    mkdir, run = stage.steps
    assert isinstance(mkdir, MkdirStep) and mkdir.path == "/app"
    assert isinstance(run, RunStep) and run.workdir == "/app" and ("NAME", "boxer") in run.env


def test_cmd_and_entrypoint_combine_as_in_docker():
    """ENTRYPOINT resets a CMD inherited from the base, not one the stage itself set (BuildKit)."""
    inherited = plan_of('FROM python:3.12\nENTRYPOINT ["python", "-u"]\n').stages[0].config
    assert inherited.entrypoint == ("python", "-u") and inherited.cmd == ()
    own = plan_of('FROM python:3.12\nCMD ["app.py"]\nENTRYPOINT ["python", "-u"]\n').stages[0].config
    assert own.entrypoint == ("python", "-u") and own.cmd == ("app.py",)


def test_multistage_target_needs_only_its_stages():
    plan = plan_of("FROM python:3.12 AS deps\nRUN mkdir /x\n"
                   "FROM python:3.12 AS unused\nRUN mkdir /y\n"
                   "FROM python:3.12 AS app\nCOPY --from=deps /x /x\n")
    assert [plan.stages[i].name for i in plan.needed()] == ["deps", "app"]
    copy = plan.stages[plan.target].steps[0]
    assert isinstance(copy, CopyStep) and copy.from_stage == 0
    first = plan_of("FROM python:3.12 AS a\nFROM python:3.12 AS b\n", target="a")
    assert [first.stages[i].name for i in first.needed()] == ["a"]


def test_unknown_stage_in_copy_from_is_an_error_naming_the_line():
    with pytest.raises(DockerfileError) as e:
        plan_of("FROM python:3.12\nCOPY --from=nowhere /a /a\n")
    assert "Dockerfile:2:" in str(e.value)


def test_native_base_is_refused_with_what_to_use_instead():
    with pytest.raises(DockerfileError) as e:
        plan_of("FROM ubuntu:22.04\n")
    assert "Dockerfile:1:" in str(e.value) and "python" in str(e.value)
