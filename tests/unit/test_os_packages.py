"""apt-get and apk in RUN (builder/osdeps.py): build-only packages are skipped with one warning,
packages an image would use at run time are refused naming them. Real scripts through the RUN
shell and the build's own Commands, against a temp rootfs (no guest starts: these commands
never reach one)."""
from __future__ import annotations

from pathlib import Path

import pytest

from boxer_py.builder.runstep import Commands
from boxer_py.errors import BoxerError
from boxer_py.shell.interpreter import ShellResult, run_script

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root"}


def no_guest(*args, **kwargs):
    raise AssertionError(f"a guest was started for {args[1]}")


def run(tmp_path: Path, script: str, skip_unsupported: bool = False) -> tuple[ShellResult, list[str]]:
    root = tmp_path / "rootfs"
    root.mkdir(exist_ok=True)
    warnings: list[str] = []
    commands = Commands(root, no_guest, skip_unsupported, warnings.append)
    return run_script(script, root=root, env=dict(ENV), cwd="/", external=commands), warnings


def test_alpine_build_deps_with_a_virtual_are_skipped_and_deleted(tmp_path):
    """charge-device-sim's line, unmodified."""
    result, warnings = run(tmp_path, "apk add --update --no-cache --virtual .build-deps g++ gcc libxml2-dev "
                                     "libxslt-dev python3-dev && apk add --no-cache libxslt && apk del .build-deps")
    assert result.exit_code == 0
    assert warnings == [
        "skipped apk add g++, gcc, libxml2-dev, libxslt-dev, python3-dev: only for compiling native code, "
        "which a WebAssembly build never does",
        "skipped apk add libxslt: a C library of lxml, which boxer provides compiled in"]
    assert b"apk del: nothing to do" in result.log


def test_alpine_update_then_headers_and_compiler(tmp_path):
    """django-celery-alpine's line, unmodified."""
    result, warnings = run(tmp_path, "apk update && apk add postgresql-dev gcc python3-dev musl-dev")
    assert result.exit_code == 0
    assert len(warnings) == 1 and warnings[0].startswith("skipped apk add postgresql-dev, gcc, python3-dev, musl-dev:")


def test_debian_spelling_with_its_flags_and_the_lists_idiom(tmp_path):
    script = ("apt-get update && apt-get install -y --no-install-recommends build-essential gcc-12 libpq-dev "
              "pkg-config && apt-get purge -y --auto-remove gcc && apt-get clean && rm -rf /var/lib/apt/lists/*")
    result, warnings = run(tmp_path, script)
    assert result.exit_code == 0, result.log
    assert warnings == ["skipped apt-get install build-essential, gcc-12, libpq-dev, pkg-config: only for compiling "
                        "native code, which a WebAssembly build never does"]
    assert result.log.count(b"nothing to do") == 3  # update, purge, clean


@pytest.mark.parametrize("script, named", [
    ("apt-get update && apt-get install -y gcc curl", "curl"),
    ("apt-get -y install --no-install-recommends libpq5 libpq-dev", "libpq5"),
    ("apk add --no-cache --virtual .deps gcc musl-dev nodejs npm", "nodejs, npm"),
    ("apt-get install -y ./vendor/tool.deb", "./vendor/tool.deb"),
])
def test_a_package_used_at_run_time_is_refused_naming_it(tmp_path, script, named):
    with pytest.raises(BoxerError) as refused:
        run(tmp_path, script)
    tool = script.split()[0]
    assert str(refused.value).startswith(f"{tool} cannot run in a WebAssembly build to install {named}: "
                                         "there are no OS packages in a WebAssembly image")
    assert "gcc" not in str(refused.value) and "--skip-unsupported" in str(refused.value)


def test_skip_unsupported_skips_the_real_package_too_with_a_warning(tmp_path):
    result, warnings = run(tmp_path, "apt-get install -y gcc curl && echo after", skip_unsupported=True)
    assert result.exit_code == 0 and result.log.endswith(b"after\n")
    assert warnings[0].startswith("skipped apt-get install curl: there are no OS packages")
    assert warnings[1].startswith("skipped apt-get install gcc: only for compiling")


def test_other_subcommands_keep_the_native_tool_refusal(tmp_path):
    with pytest.raises(BoxerError, match="apt-get cannot run in a WebAssembly build: there are no OS packages"):
        run(tmp_path, "apt-get source python3")

