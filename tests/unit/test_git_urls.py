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
