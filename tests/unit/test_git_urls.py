"""How `git+` requirements are read (builder/gitsource.parse): what is fetched, and the forms that
would read the build host, which are refused. No network."""
from __future__ import annotations

import pytest

from boxer_py.builder.gitsource import GitSource, parse
from boxer_py.builder.wheelcheck import SourceRefused


@pytest.mark.parametrize("text, url, ref, name, extras, sub", [
    ("git+https://github.com/o/r", "https://github.com/o/r", None, None, "", None),
    ("git+https://github.com/o/r.git@v1.2#egg=r", "https://github.com/o/r.git", "v1.2", "r", "", None),
    ("r[fast] @ git+https://h/o/r@" + "a" * 40, "https://h/o/r", "a" * 40, "r", "[fast]", None),
    ("git+git://127.0.0.1:9418/r@main#egg=x&subdirectory=py/pkg", "git://127.0.0.1:9418/r", "main", "x", "", "py/pkg"),
    ("git+http://user@h:8080/r@feature/x", "http://user@h:8080/r", "feature/x", None, "", None),
])
def test_what_a_git_url_names(text, url, ref, name, extras, sub):
    assert parse(text) == GitSource(text, url, ref, name, extras, sub)


@pytest.mark.parametrize("text", ["six", "six==1.0", "./pkg", "file:///src", "x @ file:///src", "https://h/x.tar.gz"])
def test_other_requirements_are_not_git(text):
    assert parse(text) is None


@pytest.mark.parametrize("text", [
    "git+file:///srv/repo", "git+/srv/repo", "git+./repo", "git+ssh://git@github.com/o/r", "git+git@github.com:o/r",
    "git+ext::sh -c id", "git+ext::sh", "x @ git+file:///srv/repo", "git+https://h/r@-uupload-pack=id",
    "git+https://h/r@a..b", "git+https://h/r#subdirectory=../up", "git+https://h/r#subdirectory=/abs",
    "git+https://h/r#egg=-x", "git+https://-oProxyCommand=id/r", "git+https://h/r$(id)", "git+svn://h/r",
])
def test_git_urls_that_would_read_or_run_on_the_host_are_refused(text):
    with pytest.raises(SourceRefused):
        parse(text)


def test_the_cache_key_names_pinned_commits_without_asking_anyone(tmp_path):
    """A URL with its commit needs no lookup; the requirements files a RUN names with -r are read
    from the image (a link loop or a missing file is the RUN's own error, not the key's)."""
    from boxer_py.builder.gitsource import pins
    sha = "b" * 40
    (tmp_path / "app").mkdir()
    (tmp_path / "app/req.txt").write_text(f"six\nx @ git+https://127.0.0.1:1/x@{sha}\n-e git+file:///srv/r#egg=r\n")
    (tmp_path / "app/loop").symlink_to("loop")
    key = pins(f"pip install git+git://127.0.0.1:1/y@{sha} -r req.txt -r loop -r missing.txt", "/app", tmp_path)
    assert f"git git://127.0.0.1:1/y@{sha}" in key and f"git https://127.0.0.1:1/x@{sha}" in key, key
    assert "git+file:///srv/r#egg=r: only git+https://" in key, key
    assert pins("pip install six -r missing.txt", "/", tmp_path) == ""
