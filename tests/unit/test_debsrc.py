"""toolchain/cpython/build.py's source fetch (the build's sources, and the test package of
tests/test_cpython_suite.py): the Debian mirror is the one the system's apt sources name, and a
mirror that cannot be reached fails with one line saying which file and why, not a traceback."""
from __future__ import annotations

import shutil

import pytest

import toolchainscripts


def test_the_mirror_is_the_one_the_system_names_not_security_nor_another_archive(tmp_path):
    build = toolchainscripts.load("build")
    listed = tmp_path / "sources.list"
    listed.write_text("# deb http://old.example/debian bookworm main\n"
                      "deb [arch=amd64] https://packages.example/apt cloud-sdk main\n"
                      "deb http://mirror.example/debian-security bookworm-security main\n")
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
                      "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
                      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    assert build.debian_mirror([tmp_path / "absent.list", listed, deb822]) == "http://mirror.example/debian"
    listed.write_text("deb http://mirror.example/debian/ bookworm main\n")
    assert build.debian_mirror([listed, deb822]) == "http://mirror.example/debian"
    with pytest.raises(SystemExit, match="no Debian mirror found"):
        build.debian_mirror([tmp_path / "absent.list"])


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="a Debian host's apt")
def test_an_unreachable_mirror_fails_in_one_line_and_leaves_no_file(tmp_path):
    build = toolchainscripts.load("build")
    item = {"package": "zlib", "suite": "trixie", "file": "zlib_1.3.dfsg+really1.3.1.orig.tar.gz",
            "sha256": "0" * 64}
    with pytest.raises(SystemExit) as failed:
        build.fetch_orig(item, tmp_path / "src", tmp_path / "apt", mirror="http://127.0.0.1:9/debian")
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"{item['file']} could not be fetched"), message
    assert "127.0.0.1" in message, message
    assert not list((tmp_path / "src").iterdir())
