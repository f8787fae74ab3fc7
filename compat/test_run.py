"""Tests of compat/run.py's rules on error lines boxer and guests really printed (python3 -m unittest)."""
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402


def build_log(*step_lines: str, error: str) -> str:
    return "\n".join(["#1 [stage-0] FROM python:3.12 (0.3s)", "#2 [stage-0] RUN pip install x (1.0s)",
                      *("    " + ln for ln in step_lines), error])


class ClassifyBuild(unittest.TestCase):
    def check(self, text: str, category: str) -> None:
        self.assertEqual(run.classify_build(text), category, text)

    def test_base_tag(self):
        self.check("boxer: Dockerfile:1: unsupported base image 'python:3.11-slim': a native Linux image cannot "
                   "run under WASI; use one of the WebAssembly bases: python:3.12, wasi-python:0.1, scratch",
                   "base-tag")

    def test_syntax(self):
        self.check("boxer: Dockerfile:16: unknown instruction HEALTHCHECK", "dockerfile-syntax")
        self.check("#1 [stage-0] RUN pip install poetry (2.0s)\n    poetry 1.8 installed\n"
                   "boxer: Dockerfile:13: ARG: expected ARG <name>[=<default>]", "dockerfile-syntax")

    def test_native_tool(self):
        self.check("boxer: Dockerfile:2: RUN: apt-get cannot run in a WebAssembly build: there are no OS packages "
                   "in a WebAssembly image", "native-tool-in-run")

    def test_pip(self):
        self.check(build_log("ERROR: No matching distribution found for pandas",
                             "pip install: pandas has no pure-Python or WASI wheel for Python 3.12 (only native "
                             "wheels or source), so it cannot run in WebAssembly; use a pure-Python alternative",
                             error="boxer: Dockerfile:3: RUN returned exit code 1: pip install: pandas has no "
                                   "pure-Python or WASI wheel for Python 3.12"), "pip-native-only")
        self.check(build_log("ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/",
                             error="boxer: Dockerfile:4: RUN returned exit code 1: ERROR: ResolutionImpossible: "
                                   "for help visit https://pip.pypa.io/"), "pip-other")
        self.check("boxer: Dockerfile:8: RUN: pip install git+https://github.com/a/b: building a package from "
                   "source would run its setup code on the build host", "pip-other")

    def test_stdlib(self):
        self.check("boxer: Dockerfile:5: RUN returned exit code 1: : No module named venv", "stdlib-missing")

    def test_unknown(self):
        self.check("boxer: something new went wrong", "other")


class ClassifyRun(unittest.TestCase):
    def test_modules(self):
        self.assertEqual(run.classify_run("ModuleNotFoundError: No module named 'fcntl'"), "stdlib-missing")
        self.assertEqual(run.classify_run("ModuleNotFoundError: No module named 'concurrent.futures.thread'"),
                         "stdlib-missing")
        self.assertEqual(run.classify_run("ModuleNotFoundError: No module named 'dotenv'"), "pip-other")
        # billiard tries cffi, then ctypes: the last missing module is the cause
        self.assertEqual(run.classify_run("ModuleNotFoundError: No module named 'cffi'\n\nDuring handling of the above "
                                          "exception, another exception occurred:\n\nModuleNotFoundError: No module "
                                          "named 'ctypes'"), "stdlib-missing")

    def test_native_program(self):
        self.assertEqual(run.classify_run("boxer: /entrypoint.sh: /entrypoint.sh is not a WebAssembly program "
                                          "(native binaries and scripts cannot run here)"), "native-tool-in-run")

    def test_network(self):
        self.assertEqual(run.classify_run("ImportError: SSL module is not available"), "needs-outbound-network")
        self.assertEqual(run.classify_run("_ssl.SSLError: TLS is not available: this WebAssembly sandbox has no network"),
                         "needs-outbound-network")
        self.assertEqual(run.classify_run("socket.gaierror: [Errno -3] this sandbox has no network to resolve names in "
                                          "(--allow-net HOST gives it one)"), "needs-outbound-network")


class Probe(unittest.TestCase):
    def test_python_from_lines(self):
        for before, after in [
            ("FROM python:3.11-slim", "FROM python:3.12"),
            ("FROM --platform=$BUILDPLATFORM python:3.10-alpine AS builder", "FROM python:3.12 AS builder"),
            ("FROM docker.io/python:3.14.0-slim", "FROM python:3.12"),
            ("FROM python:3.12@sha256:" + "a" * 64 + " as builder", "FROM python:3.12 as builder"),
            ("FROM gcr.io/distroless/python3-debian12", "FROM python:3.12"),
            ("from python", "from python:3.12"),
            ("FROM pythonista:1", "FROM pythonista:1"),
            ("FROM golang:1.22 AS go", "FROM golang:1.22 AS go"),
        ]:
            self.assertEqual(run.probe_dockerfile(before), after)


class Manifest(unittest.TestCase):
    def test_manifest_is_complete(self):
        cases = run.load_manifest(Path(run.HERE / "manifest.toml"))
        self.assertGreaterEqual(len(cases), 30)
        self.assertEqual(len({c.name for c in cases}), len(cases))
        for c in cases:
            self.assertRegex(c.commit, r"^[0-9a-f]{40}$")
            self.assertRegex(c.repository, r"^[\w.-]+/[\w.-]+$")
            self.assertIn(c.expected, ("", *run.CATEGORIES), c.name)


if __name__ == "__main__":
    unittest.main()
