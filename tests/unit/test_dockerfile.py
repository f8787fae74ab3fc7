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


# Leniency as in BuildKit (issue 16, item 7)


def test_arg_declares_every_word_as_buildkit_does():
    # Docker reads `ARG VCS_REF= # CHANGE ME` as four ARGs: VCS_REF="" and #, CHANGE, ME without a value.
    df = parse("ARG VCS_REF= # CHANGE ME\nFROM scratch\nARG VERSION ???\nARG A=1 B\n")
    assert [(i.name, i.default) for i in df.instructions if isinstance(i, ins.Arg)] == [
        ("VCS_REF", ""), ("#", None), ("CHANGE", None), ("ME", None), ("VERSION", None), ("???", None),
        ("A", "1"), ("B", None)]
    plan = plan_of("ARG VCS_REF= # CHANGE ME\nFROM scratch\nARG VCS_REF\nARG VERSION ???\nRUN echo $VCS_REF\n",
                   build_args={"VERSION": "2"})
    run = plan.stages[0].steps[0]
    assert dict(run.env) == {"VCS_REF": "", "VERSION": "2"}  # the comment's words set nothing


def test_arg_with_a_blank_name_is_refused_with_its_line():
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: ARG: names can not be blank$"):
        parse("FROM scratch\nARG =x\n")


def test_parser_directives_syntax_and_escape():
    df = parse("# syntax=docker/dockerfile:1.7\n# escape=`\nFROM scratch\nRUN echo a `\n  b\n"
               "COPY ['a b.txt', '/x/']\nENV P=C:\\dir A=x`$y\n".replace("'", '"'))
    run, copy, env = df.instructions[1:]
    assert "echo a" in run.command[0] and "b" in run.command[0] and "`" not in run.command[0]
    assert copy.sources == ("a b.txt",)
    assert env.pairs == (("P", "C:\\dir"), ("A", "x\\$y"))  # ` escapes; \ is a plain character
    with pytest.raises(DockerfileError, match="Dockerfile:1: invalid escape directive"):
        parse("# escape=x\nFROM scratch\n")


def test_healthcheck_forms_go_to_the_config_as_docker_records_them():
    plan = plan_of('FROM python:3.12\nHEALTHCHECK --interval=1m30s --timeout=3s --start-period=500ms '
                   '--start-interval=2s --retries=4 CMD curl -f http://localhost/ || exit 1\n')
    assert plan.stages[0].config.to_oci()["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], "Interval": 90 * 10**9,
        "Timeout": 3 * 10**9, "StartPeriod": 500 * 10**6, "StartInterval": 2 * 10**9, "Retries": 4}
    plan = plan_of('FROM python:3.12\nHEALTHCHECK CMD ["python", "-c", "print(1)"]\n')
    assert plan.stages[0].config.healthcheck == {"Test": ("CMD", "python", "-c", "print(1)")}
    plan = plan_of('FROM python:3.12 AS b\nHEALTHCHECK CMD ["python"]\nFROM b\nHEALTHCHECK NONE\n')
    assert plan.stages[1].config.to_oci()["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize("line, message", [
    ("HEALTHCHECK", "HEALTHCHECK: unknown type '(none)'"),
    ("HEALTHCHECK NONE --x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK --interval=5s NONE", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK --interval=5 CMD true", "--interval=5: expected a duration"),
    ("HEALTHCHECK --interval=5us CMD true", "cannot be less than 1ms"),
    ("HEALTHCHECK --retries=-1 CMD true", "--retries=-1: expected a number"),
    ("HEALTHCHECK --bogus=1 CMD true", "unknown flag --bogus"),
    ("HEALTHCHECK PING x", "unknown type 'PING'"),
    ("HEALTHCHECK CMD", "missing command after HEALTHCHECK CMD"),
    ("SHELL /bin/bash -c", "SHELL requires the arguments as a JSON array"),
    ("ONBUILD ONBUILD RUN x", "chaining ONBUILD"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD FROB x", "unknown instruction FROB"),
    ("ADD --checksum=md5:x f /f", "--checksum=md5:x: expected sha256:"),
    ("COPY --checksum=sha256:" + "0" * 64 + " f /f", "unknown flag --checksum"),
    ("COPY --link=maybe f /f", "flag --link is true or false"),
])
def test_bad_forms_of_the_new_instructions_name_the_line(line, message):
    with pytest.raises(DockerfileError) as e:
        plan_of(f"FROM python:3.12\n{line}\n")
    assert str(e.value).startswith("Dockerfile:2: ") and message in str(e.value) and "\n" not in str(e.value)


def test_shell_onbuild_stopsignal_maintainer_are_recorded():
    plan = plan_of('FROM python:3.12\nMAINTAINER Jo Doe <jo@example.com>\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
                   'ONBUILD COPY . /app\nONBUILD RUN pip install -r /app/requirements.txt\nSTOPSIGNAL SIGINT\n'
                   'CMD python app.py\n')
    stage = plan.stages[0]
    oci = stage.config.to_oci()
    assert stage.author == "Jo Doe <jo@example.com>" and "maintainer" not in stage.config.labels
    assert oci["Shell"] == ["/bin/bash", "-o", "pipefail", "-c"]
    assert oci["OnBuild"] == ["COPY . /app", "RUN pip install -r /app/requirements.txt"]
    assert oci["StopSignal"] == "SIGINT"
    assert oci["Cmd"] == ["/bin/sh", "-c", "python app.py"]  # the image's sh runs a bash SHELL's commands
    # a shell the build cannot stand in for is refused at the RUN that needs it, with the line
    with pytest.raises(DockerfileError, match=r"^Dockerfile:3: RUN: the SHELL \['pwsh', '-c'\] cannot run here"):
        plan_of('FROM python:3.12\nSHELL ["pwsh", "-c"]\nRUN echo hi\n')
    plan = plan_of('FROM python:3.12\nSHELL ["pwsh", "-c"]\nCMD Get-Date\n')
    assert plan.stages[0].config.cmd == ("pwsh", "-c", "Get-Date")  # recorded as Docker records it


def test_config_round_trips_the_new_fields_and_validates_them():
    from boxer_py.image.config import ImageConfig, ImageSpec

    config = ImageConfig(healthcheck={"Test": ("CMD-SHELL", "true"), "Interval": 5 * 10**9, "Retries": 2},
                         shell=("/bin/bash", "-c"), on_build=("RUN echo hi",))
    spec = ImageSpec(config, (), ("FROM x",), "someone")
    assert ImageSpec.from_json(spec.to_json()) == spec
    for bad in ({"Healthcheck": {"Test": "true"}}, {"Healthcheck": {"Interval": -1}},
                {"Healthcheck": {"Retries": True}}, {"Healthcheck": {"Other": 1}}, {"Shell": "sh"},
                {"OnBuild": [1]}):
        with pytest.raises(ValueError):
            ImageConfig.from_oci(bad)


def test_copy_and_add_flags_as_buildkit_accepts_them():
    df = parse("FROM scratch\nCOPY --link --parents --exclude=*.pyc --exclude='tests/**' --chmod=u=rwx,go=rX "
               "src/./app /dst/\nADD --link=false --keep-git-dir=true --checksum=sha256:" + "a" * 64 + " f /f\n")
    copy, add = df.instructions[1:]
    assert (copy.link, copy.parents, copy.exclude, copy.chmod) == (True, True, ("*.pyc", "tests/**"), "u=rwx,go=rX")
    assert (add.link, add.keep_git_dir, add.checksum) == (False, True, "sha256:" + "a" * 64)
    with pytest.raises(DockerfileError, match="Dockerfile:2: COPY --chmod=u=rwz: expected an octal mode"):
        plan_of("FROM scratch\nCOPY --chmod=u=rwz f /f\n")


def test_run_mounts_are_planned_bind_secret_tmpfs_and_cache():
    plan = plan_of("FROM python:3.12 AS deps\nRUN echo\nFROM python:3.12\nWORKDIR /app\n"
                   "RUN --mount=type=bind,source=req.txt,target=req.txt --mount=type=bind,from=deps,source=/lib,"
                   "target=/mnt/lib --mount=type=secret,id=token --mount=type=secret,id=pw,target=/etc/pw,required "
                   "--mount=type=secret,id=key,env=API_KEY --mount=type=tmpfs,target=/scratch "
                   "--mount=type=cache,target=/root/.cache/pip echo\n")
    run = plan.stages[1].steps[-1]
    assert [(m.kind, m.target, m.source, m.from_stage, m.id, m.required, m.env) for m in run.mounts] == [
        ("bind", "/app/req.txt", "req.txt", None, "", False, ""),
        ("bind", "/mnt/lib", "/lib", 0, "", False, ""),
        ("secret", "/run/secrets/token", "", None, "token", False, ""),
        ("secret", "/etc/pw", "", None, "pw", True, ""),
        ("secret", "", "", None, "key", False, "API_KEY"),
        ("tmpfs", "/scratch", "", None, "", False, "")]
    assert plan.needed() == [0, 1]  # a bind mount from a stage makes it needed


@pytest.mark.parametrize("mount, message", [
    ("type=ssh", "type=ssh: a build has no network"),
    ("type=nfs,target=/x", "type=nfs: unknown mount type"),
    ("type=bind", "type=bind: needs target=PATH"),
    ("type=bind,target=/x,colour=red", "unknown option 'colour'"),
    ("type=secret", "needs id=NAME"),
    ("type=tmpfs,target=/", "cannot mount over /"),
])
def test_bad_mounts_are_refused_with_the_line(mount, message):
    with pytest.raises(DockerfileError) as e:
        plan_of(f"FROM python:3.12\nRUN --mount={mount} echo\n")
    assert str(e.value).startswith("Dockerfile:2: RUN --mount") and message in str(e.value)


def test_target_does_not_check_stages_it_does_not_need():
    text = ("FROM node:18 AS frontend\nRUN npm ci\nFROM python:3.12 AS app\nCOPY --from=nowhere /x /y\n"
            "FROM python:3.12 AS api\nCOPY app.py /app/\n")
    plan = plan_of(text, target="api")  # neither the native base nor the unknown --from is looked at
    assert plan.needed() == [2]
    with pytest.raises(DockerfileError, match=r"^Dockerfile:4: COPY --from=nowhere: no earlier stage"):
        plan_of(text, target="app")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1: unsupported base image 'node:18'"):
        plan_of(text + "FROM python:3.12\nCOPY --from=frontend /dist /dist\n")


@pytest.mark.parametrize("requires, native", [
    (["meson-python>=0.15", "Cython>=3"], "meson-python"), (["scikit-build-core[pyproject]"], "scikit-build-core"),
    (["maturin>=1,<2"], "maturin"), (["setuptools>=61", "Cython<3"], None), (["setuptools", "wheel"], None),
])
def test_source_builds_refuse_backends_that_always_compile(requires, native):
    from boxer_py.builder.sdist import native_backend

    assert native_backend(requires) == native
