"""`FROM scratch` images: any WASI command module as the ENTRYPOINT, here one compiled from C
(toolchain/programs/hello.c, by zig cc) that reports its argv, env, cwd, stdin and exit code."""
from __future__ import annotations

import json

import pytest
import wasmtime

import boxer_py
from boxer_py.runtime.modcache import ModuleCache, new_engine
from boxer_py.runtime.wasi.cwd import find_cwd_slot

GREETING = "This file was read through a relative path, from the WORKDIR.\n"
DEFAULT_OUTPUT = f"Hello from C on wasi!\nargv: [/hello.wasm] [--read] [greeting.txt]\ncwd: /work\n{GREETING}"


@pytest.fixture(scope="module")
def hello_wasm(hello_c_context) -> bytes:
    return (hello_c_context / "hello.wasm").read_bytes()


def lines(stdout: str) -> list[str]:
    return stdout.splitlines()


def test_cwd_slot_is_found_in_the_zig_built_module(hello_wasm):
    # wasm-ld leaves relocated immediates padded to 5 bytes and zig's libc reads the global
    # as `i32.const 0; i32.load offset=ADDR`: the finder must see through both.
    slot = find_cwd_slot(hello_wasm)
    assert slot is not None
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    memory = linker.instantiate(store, wasmtime.Module(engine, hello_wasm)).exports(store)["memory"]
    pointer = int.from_bytes(memory.read(store, slot, slot + 4), "little")
    assert memory.read(store, pointer, pointer + 2) == b"/\0"  # the initial cwd, "/"


def test_cache_entries_from_an_older_cwd_finder_are_redone(tmp_path, hello_wasm):
    engine = new_engine()
    ModuleCache(engine, tmp_path).load(hello_wasm)
    [meta_path] = tmp_path.glob("*.json")
    meta = json.loads(meta_path.read_text())
    del meta["cwd_finder"]
    meta["cwd_slot"] = None  # what the finder before padded LEBs recorded for this module
    meta_path.write_text(json.dumps(meta))
    assert ModuleCache(engine, tmp_path).load(hello_wasm).cwd_slot == find_cwd_slot(hello_wasm) is not None


def test_c_example_runs_with_its_entrypoint_cmd_and_workdir(boxer, hello_c_image):
    r = boxer("run", str(hello_c_image))
    assert (r.returncode, r.stdout, r.stderr) == (0, DEFAULT_OUTPUT, "")


def test_c_example_through_the_library(hello_c_image, launcher):
    box = boxer_py.Session(hello_c_image, launcher=launcher)
    r = box.run()
    assert (r.exit_code, r.stdout.decode(), r.stderr) == (0, DEFAULT_OUTPUT, b"")
    r = box.run(["--cat", "--exit", "9"], stdin=b"piped in\n", env={"GREETING": "Hi"})
    assert r.exit_code == 9
    assert r.stdout.decode() == "Hi from C on wasi!\nargv: [/hello.wasm] [--cat] [--exit] [9]\ncwd: /work\npiped in\n"


def test_run_arguments_replace_cmd_and_keep_entrypoint(boxer, hello_c_image):
    r = boxer("run", str(hello_c_image), "one", "two words")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[1] == "argv: [/hello.wasm] [one] [two words]"


def test_entrypoint_flag_replaces_entrypoint_and_clears_cmd(boxer, hello_c_image):
    r = boxer("run", "--entrypoint", "/hello.wasm", str(hello_c_image))
    assert lines(r.stdout)[1] == "argv: [/hello.wasm]", r.stderr
    # A program path with a slash resolves against the working directory (/work).
    r = boxer("run", "--entrypoint", "../hello.wasm", str(hello_c_image), "x")
    assert lines(r.stdout)[1] == "argv: [../hello.wasm] [x]", r.stderr


@pytest.mark.parametrize("tail, argv", [
    ('CMD ["/hello.wasm", "a"]', "[/hello.wasm] [a]"),
    ("CMD /hello.wasm a $GREETING", "[/hello.wasm] [a] [Hello]"),
    ('ENTRYPOINT ["/hello.wasm", "e"]', "[/hello.wasm] [e]"),
    ('ENTRYPOINT ["/hello.wasm", "e"]\nCMD ["c", "d"]', "[/hello.wasm] [e] [c] [d]"),
    ('CMD ["c"]\nENTRYPOINT ["/hello.wasm"]', "[/hello.wasm] [c]"),
    ('ENTRYPOINT ["/hello.wasm", "e"]\nCMD c d', "[/hello.wasm] [e] [/bin/sh] [-c] [c d]"),
    ('ENTRYPOINT /hello.wasm e\nCMD ["ignored"]', "[/hello.wasm] [e]"),
])
def test_entrypoint_and_cmd_follow_dockers_combination_rules(build, boxer, hello_wasm, tail, argv):
    img = build(f"FROM scratch\nENV GREETING=Hello\nCOPY hello.wasm /\n{tail}\n", {"hello.wasm": hello_wasm})
    r = boxer("run", str(img))
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[1] == f"argv: {argv}"


def test_environment_is_the_image_env_plus_flags_only(boxer, hello_c_image):
    r = boxer("run", "-e", "GREETING=Bonjour", "-e", "EXTRA=1", str(hello_c_image), "--env",
              env={"BOXER_TEST_SECRET": "s3cret"})
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert out[0] == "Bonjour from C on wasi!"
    assert [x for x in out if x.startswith("env: ")] == ["env: GREETING=Bonjour", "env: EXTRA=1", "env: HOME=/root"]


def test_workdir_is_cwd_for_getcwd_relative_reads_and_writes(boxer, hello_c_image):
    r = boxer("run", str(hello_c_image), "--write", "note.txt", "written relative", "--read", "/work/note.txt",
              "--read", "greeting.txt")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[2:] == ["cwd: /work", "wrote note.txt", "written relative" + GREETING.rstrip("\n")]


def test_workdir_flag_and_chdir_inside_the_guest(boxer, hello_c_image):
    r = boxer("run", "-w", "/", str(hello_c_image), "--read", "work/greeting.txt", "--cd", "work",
              "--read", "greeting.txt")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[2:] == ["cwd: /", GREETING.strip(), "cwd: /work", GREETING.strip()]
    r = boxer("run", "-w", "/", str(hello_c_image), "--read", "greeting.txt")
    assert r.returncode == 1 and "cannot open greeting.txt" in r.stderr
    r = boxer("run", "-w", "/new/dir", str(hello_c_image), "--read", "../../work/greeting.txt")
    assert lines(r.stdout)[2:] == ["cwd: /new/dir", GREETING.strip()], r.stderr


def test_stdin_only_with_i(boxer, hello_c_image):
    r = boxer("run", "-i", str(hello_c_image), "--cat", input="from the host's stdin\n")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[-1] == "from the host's stdin"
    r = boxer("run", str(hello_c_image), "--cat", input="not passed\n")
    assert r.returncode == 0 and "not passed" not in r.stdout
    assert lines(r.stdout)[-1] == "cwd: /work"


@pytest.mark.parametrize("code", [0, 1, 7, 125])
def test_exit_code_propagates(boxer, hello_c_image, code):
    r = boxer("run", str(hello_c_image), "--exit", str(code))
    assert r.returncode == code, r.stderr
    assert lines(r.stdout)[1] == f"argv: [/hello.wasm] [--exit] [{code}]"


def test_exit_code_outside_wasi_range_is_a_crash(boxer, hello_c_image):
    r = boxer("run", str(hello_c_image), "--exit", "200")
    assert r.returncode == 134
    assert "invalid exit status" in r.stderr and "Traceback" not in r.stderr


def one_line_error(r, code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_entrypoint_that_is_not_wasm_is_126(build, boxer):
    img = build('FROM scratch\nCOPY run.txt /run.txt\nENTRYPOINT ["/run.txt"]\n', {"run.txt": "echo hi\n"})
    one_line_error(boxer("run", str(img)), 126, "/run.txt", "not a WebAssembly program")


def test_entrypoint_with_wasm_magic_but_invalid_module_is_126(build, boxer):
    img = build('FROM scratch\nCOPY bad.wasm /bad.wasm\nENTRYPOINT ["/bad.wasm"]\n', {"bad.wasm": b"\0asm\x01\0\0\0\x0a\xff"})
    one_line_error(boxer("run", str(img)), 126, "/bad.wasm", "not a valid WebAssembly program")


def test_wasm_module_without_start_is_126(build, boxer):
    reactor = bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "f")))'))
    img = build('FROM scratch\nCOPY lib.wasm /lib.wasm\nENTRYPOINT ["/lib.wasm"]\n', {"lib.wasm": reactor})
    one_line_error(boxer("run", str(img)), 126, "not a WASI command")


def test_missing_entrypoint_is_127(build, boxer, hello_wasm):
    img = build('FROM scratch\nCOPY hello.wasm /hello.wasm\nENTRYPOINT ["/nope.wasm"]\n', {"hello.wasm": hello_wasm})
    one_line_error(boxer("run", str(img)), 127, "/nope.wasm: not found")
    r = boxer("run", "--entrypoint", "hello.wasm", str(img))  # no slash: looked up in PATH, not in /
    one_line_error(r, 127, "hello.wasm: not found in PATH")
