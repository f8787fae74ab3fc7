#!/usr/bin/env python3
"""Build CPython for wasm32-wasip1 from Debian's source packages, reproducibly.

Steps (each one skips itself when its output is already there, `clean` starts over):

  fetch     orig tarballs by name with `apt-get source --download-only`, wasi-libc with
            `apt-get download`, through an apt configuration of its own under <work>/apt (no
            root; the system's apt sources need neither deb-src lines nor trixie); every file
            checked against the sha256 recorded below
  sysroot   trixie's wasi-libc unpacked with `dpkg -x`: a clean --sysroot, nothing from /usr/include
  deps      zlib, bzip2, xz (liblzma) and sqlite compiled for wasm32-wasi with the same clang
  native    a native build python of the same version (--with-build-python)
  configure the cross configure with Tools/wasm/config.site-wasm32-wasi
  make      make -j2
  install   make install into a staging directory
  package   strip debug data (kept apart in python.wasm.debug), compile the stdlib to .pyc
            (unchecked-hash, fixed paths) and zip it with fixed timestamps, write provenance.json
  vendor    copy the outputs, lzma-compressed, into toolchain/runtimes/cpython-X.Y/
  check     compare the build's outputs with the vendored provenance.json (sha256 of each file)

Usage: build.py [--version 3.13] [--work /work/build] STEP...   (`all` = fetch..package)
Only Python's standard library is used, so the host needs nothing beyond the Debian packages
listed in DEBIAN_DEPS (see `make deps`; fetching the sources needs only apt and no root).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RUNTIMES = REPO / "toolchain" / "runtimes"

# The host's Debian packages the build uses (the toolchain from bookworm, the build python's
# own optional modules' headers so that the native build is complete).
DEBIAN_DEPS = [
    "clang-19", "lld-19", "llvm-19", "libclang-rt-19-dev-wasm32", "dpkg-dev", "build-essential",
    "pkg-config", "tcl", "libssl-dev", "libffi-dev", "zlib1g-dev", "libbz2-dev", "liblzma-dev",
    "libsqlite3-dev", "libexpat1-dev",
]
LLVM_VERSION = "19"

# The compiler's own C library for wasm32-wasi: bookworm's (2022) is too old for CPython 3.13
# (Python/thread.c: "Unsupported SIZEOF_PTHREAD_T value"), trixie's works for every version.
WASI_LIBC = {
    "package": "wasi-libc", "version": "0.0~git20241209.574b88d-2", "suite": "trixie",
    "file": "wasi-libc_0.0~git20241209.574b88d-2_all.deb",
    "sha256": "b7716260051d289248b7667f81fa2792c125d888ff51da3fa09c6272cc0bd11d",
}

# Libraries compiled into the interpreter, from Debian's source packages (orig tarballs only:
# the Debian revision may move on, the upstream source checked by sha256 does not).
LIBS = {
    "zlib": {"package": "zlib", "suite": "trixie", "file": "zlib_1.3.dfsg+really1.3.1.orig.tar.gz",
             "sha256": "60dd315c07f616887caa029408308a018ace66e3d142726a97db164b3b8f69fb"},
    "bzip2": {"package": "bzip2", "suite": "trixie", "file": "bzip2_1.0.8.orig.tar.gz",
              "sha256": "ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269"},
    "xz": {"package": "xz-utils", "suite": "trixie", "file": "xz-utils_5.8.1.orig.tar.xz",
           "sha256": "0b54f79df85912504de0b14aec7971e3f964491af1812d83447005807513cd9e"},
    "sqlite": {"package": "sqlite3", "suite": "trixie", "file": "sqlite3_3.46.1.orig.tar.xz",
               "sha256": "d0cdd2ece271b29e7ce18095745d892517ee26d0f270065b3a25c2e9eb11639c"},
}

VERSIONS = {
    # 3.9 predates CPython's WASI port (3.11): patches/3.9/*.patch add what it needs
    "3.9": {"package": "python3.9", "suite": "bullseye", "full": "3.9.2", "host": "wasm32-unknown-wasi",
            "make_vars": ["EXTRA_CFLAGS=-Wno-int-conversion"],
            # ThinLTO as the others: patch 15 makes 3.9's configure give clang -flto=thin for it
            "install_targets": ["altbininstall", "libinstall"],
            # no --with-build-python yet: PYTHON_FOR_BUILD names the native build (configure_env)
            "build_python_on_path": True,
            # wasi-libc's emulations (3.11's configure adds them for WASI itself), the stack and
            # memory layout 3.13's configure gives; the built-in modules' list
            "site": "wasi/config.site-3.9",
            "setup_local": "wasi/Setup.local-3.9",
            "cflags": "-D_WASI_EMULATED_SIGNAL -D_WASI_EMULATED_GETPID -D_WASI_EMULATED_PROCESS_CLOCKS "
                      "-D_WASI_EMULATED_MMAN -D_WASI_EMULATED_PTHREAD",
            "libs": "-lwasi-emulated-signal -lwasi-emulated-getpid -lwasi-emulated-process-clocks "
                    "-lwasi-emulated-mman -lwasi-emulated-pthread",
            "ldflags": "-z stack-size=8388608 -Wl,--stack-first -Wl,--initial-memory=20971520",
            "exe": "python",
            # what 3.9 calls unconditionally and wasi-libc lacks (3.11 has an #ifdef for each)
            "compat": ["wasi/compat-3.9.c"],
            "compat_include": "wasi/compat-3.9.h",
            "file": "python3.9_3.9.2.orig.tar.xz",
            "sha256": "3c2034c54f811448f516668dce09d24008a0716c3a794dd8639b5388cbde247d"},
    "3.13": {"package": "python3.13", "suite": "trixie", "full": "3.13.5", "host": "wasm32-wasip1",
             "file": "python3.13_3.13.5.orig.tar.xz",
             "sha256": "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"},
    # 3.11's config.sub predates the wasip1 name
    # 3.11 predates wasi-libc's pointer clockid_t: clang 19 makes its int conversions errors
    # (3.13's configure adds -Wno-int-conversion itself for WASI).
    "3.11": {"package": "python3.11", "suite": "bookworm", "full": "3.11.2", "host": "wasm32-unknown-wasi",
             "make_vars": ["EXTRA_CFLAGS=-Wno-int-conversion"],
             # `make install`'s sharedinstall (setup.py) wants xxlimited.so, which a WASI build
             # (no shared modules) never makes: the interpreter and the library suffice
             "install_targets": ["altbininstall", "libinstall"],
             "file": "python3.11_3.11.2.orig.tar.gz",
             "sha256": "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"},
}

# C files of ours linked into every interpreter (LIBS), each defining __wrap_F for the wasi-libc
# functions F in WRAPPED (wasm-ld --wrap=F sends every call of F there).
WASI_OVERRIDES = ["wasi/chmod.c", "wasi/stat.c"]
WRAPPED = ["chmod", "fchmod", "fchmodat", "stat", "lstat", "fstat", "fstatat"]
# SQLite's amalgamation with our lock answers (compiled into libsqlite3.a instead of sqlite3.c)
SQLITE_WASI = "wasi/sqlite3_wasi.c"

# Fixed for every build: the timestamp compilers and archives see, the guest's prefix.
SOURCE_DATE_EPOCH = 1735689600  # 2025-01-01T00:00:00Z
PREFIX = "/usr/local"
OPT = "-DNDEBUG -O3"
# Left out of the stdlib zip: the test suite, GUI and IDE packages, ensurepip's wheels, the
# static library and Makefile of config-X.Y, and what the WASI build cannot run anyway.
ZIP_EXCLUDE_DIRS = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib-dynload",
                    "site-packages", "__pycache__", "__phello__", "venv"}
ZIP_EXCLUDE_PREFIXES = ("config-",)
ZIP_EXCLUDE_FILES = {"turtle.py"}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd, cwd=None, env=None, log_to: Path | None = None):
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    log("$", " ".join(shlex.quote(c) for c in cmd), f"(in {cwd})" if cwd else "")
    if log_to is None:
        subprocess.run(cmd, cwd=cwd, env=env, check=True)
        return
    with open(log_to, "ab") as out:
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = log_to.read_text(errors="replace").splitlines()[-40:]
        sys.exit(f"failed ({r.returncode}): {cmd}\n--- last lines of {log_to}:\n" + "\n".join(tail))


# The keyring the system's apt checks Debian's signatures with; the mirror is the one the
# system's own apt sources name (never a host name of ours).
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_SOURCES = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
               *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]


def debian_mirror(sources: list[Path] = APT_SOURCES) -> str:
    """The URI of the Debian mirror the system's apt sources name (the first that is Debian's
    archive, not its security one)."""
    for path in sources:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":  # deb822 stanzas
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([\w-]+):[ \t]*(.*)$", stanza, re.M))
                uris = fields.get("URIs", "").split()
                if (uris and "security" not in uris[0] and fields.get("Enabled", "yes").lower() != "no"
                        and ("debian" in uris[0] or "debian-archive" in fields.get("Signed-By", ""))):
                    return uris[0].rstrip("/")
        else:  # one-line style: deb [options] URI suite components
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] in ("deb", "deb-src") and "security" not in words[1] \
                        and "debian" in words[1]:
                    return words[1].rstrip("/")
    raise SystemExit("no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/")


def _apt(apt_dir: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """apt-get with apt_dir's sources list, lists and cache, the system's left as they are
    (its apt.conf.d, a proxy say, still applies); needs no root."""
    opts = [f"Dir::Etc::SourceList={apt_dir / 'sources.list'}", f"Dir::Etc::SourceParts={apt_dir / 'sources.list.d'}",
            f"Dir::State::Lists={apt_dir / 'lists'}", f"Dir::State::status={apt_dir / 'status'}",
            f"Dir::Cache={apt_dir / 'cache'}", f"Dir::Etc::Preferences={apt_dir / 'preferences'}",
            f"Dir::Etc::PreferencesParts={apt_dir / 'preferences.d'}"]
    cmd = ["apt-get", "-qq", *(a for o in opts for a in ("-o", o)), *args]
    env = {**os.environ, "LC_ALL": "C"}
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise SystemExit("apt-get not found: Debian's source packages are fetched with apt") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, -1, "", f"E: apt-get {args[0]} took over 30 minutes")


def fetch_orig(item: dict, dest: Path, apt_root: Path, mirror: str | None = None) -> Path:
    """dest/item["file"], the orig tarball of Debian source package item["package"] in
    item["suite"], fetched with `apt-get source --download-only` through a private apt
    configuration under apt_root (a deb-src line for the suite, the system's mirror unless
    `mirror` names one, the system's keyring), and checked against item["sha256"]."""
    return _apt_fetch(item, dest, apt_root, "deb-src", ["source", "--download-only", f"{item['package']}/{item['suite']}"],
                      mirror)


def fetch_deb(item: dict, dest: Path, apt_root: Path, mirror: str | None = None) -> Path:
    """dest/item["file"], the binary package item["package"] at item["version"] from
    item["suite"] (`apt-get download`), as fetch_orig fetches a source."""
    return _apt_fetch(item, dest, apt_root, "deb", ["download", f"{item['package']}={item['version']}"], mirror)


def _apt_fetch(item: dict, dest: Path, apt_root: Path, kind: str, command: list[str], mirror: str | None) -> Path:
    path = dest / item["file"]
    if not path.is_file():
        suite = item["suite"]
        apt_dir = apt_root / f"{suite}-{'src' if kind == 'deb-src' else 'deb'}"
        for d in ("lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
            (apt_dir / d).mkdir(parents=True, exist_ok=True)
        (apt_dir / "status").touch()
        mirror = mirror or debian_mirror()
        line = f"{kind} [signed-by={DEBIAN_KEYRING}] {mirror} {suite} main\n"
        sources = apt_dir / "sources.list"
        fresh = not sources.is_file() or sources.read_text() != line
        sources.write_text(line)
        index = "*Sources*" if kind == "deb-src" else "*Packages*"
        dest.mkdir(parents=True, exist_ok=True)
        error = ""
        # The lists are updated when they are not there, and once more when the fetch fails
        # (an index that moved on); the .dsc or Debian tarball of a superseded revision may be
        # gone from the mirror: only the orig tarball matters, and it is checked by hash below.
        for update in ([True] if fresh or not any((apt_dir / "lists").glob(index)) else [False, True]):
            if update:
                r = _apt(apt_dir, ["update", "--error-on=any"], dest)  # an index not fetched is an error
                if r.returncode:
                    error = _last_error(r.stderr) or f"apt-get update exited {r.returncode}"
                    break
            with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
                r = _apt(apt_dir, command, Path(tmp))
                got = Path(tmp) / item["file"]
                if got.is_file():
                    got.rename(path)  # whole or not at all: a fetch cut short leaves nothing behind
                    break
                error = _last_error(r.stderr) or f"not among the files of {' '.join(command[1:])}"
        if not path.is_file():
            raise SystemExit(f"{item['file']} could not be fetched from {mirror} ({suite}): {error}")
    got_sha = sha256(path)
    if got_sha != item["sha256"]:
        raise SystemExit(f"{path}: sha256 {got_sha}, not the pinned {item['sha256']}")
    return path


def _last_error(stderr: str) -> str:
    """apt's last error line that says why (not its closing summary), else its last warning."""
    lines = [line.strip()[3:] for line in stderr.splitlines() if line.startswith(("E: ", "W: "))]
    said = [line for line in lines if not line.startswith(
        ("Some index files", "Failed to fetch some archives", "Download is performed unsandboxed"))]
    return " ".join((said or [""])[-1].split())


class Build:
    def __init__(self, version: str, work: Path, jobs: int, lto: str | None, pymalloc: bool):
        self.version = version
        self.spec = VERSIONS[version]
        self.work = work / f"cpython-{version}"
        self.srcdir = work / "src"          # downloads, shared between versions
        self.apt = work / "apt"             # the private apt configuration that fetches them
        self.jobs = jobs
        # "thin", "full" or None: --lto on the command line, else the version's own choice
        self.lto = self.spec.get("lto", "thin") if lto == "default" else lto
        self.pymalloc = pymalloc
        self.sysroot = self.work / "sysroot" / "usr"
        # The libraries do not depend on the Python version: built once, shared.
        self.deps = work / "deps-wasm32-wasi"
        self.logs = self.work / "logs"
        self.out = self.work / "out"
        self.tools = self.work / "bin"     # llvm-ar & co. under their unversioned names
        self.staging = self.work / "staging"

    # ---- environment -------------------------------------------------------------------
    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{self.tools}:/usr/lib/llvm-{LLVM_VERSION}/bin:/usr/local/bin:/usr/bin:/bin"
        env["SOURCE_DATE_EPOCH"] = str(SOURCE_DATE_EPOCH)
        env["LC_ALL"] = "C"
        env["TZ"] = "UTC"
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        env.update(extra)
        return env

    @property
    def prefix_map(self) -> str:
        # Every host directory a compile reads from: the version's tree and the libraries'
        # headers (-I), which DWARF records. ThinLTO names a promoted static
        # `f.llvm.<hash of its object>`, so one unmapped path in an object changes a name in
        # the module's name section when the build runs elsewhere.
        return f"-ffile-prefix-map={self.work}=/build -ffile-prefix-map={self.deps}=/deps"

    def unmapped(self, text: str) -> str:
        """`text` with this machine's build directories named as the prefix maps name them,
        so provenance.json does not depend on where the build ran (--work)."""
        for host, mapped in ((self.work, "/build"), (self.deps, "/deps"), (self.deps.parent, "/build-root"),
                             (HERE, "/toolchain")):
            text = text.replace(str(host), mapped)
        return text

    def cc(self, prefix_map: str | None = None) -> str:
        return (f"clang-{LLVM_VERSION} --target=wasm32-wasi --sysroot={self.sysroot} "
                f"{prefix_map or self.prefix_map}")

    @property
    def deps_cc(self) -> str:
        return self.cc(f"-ffile-prefix-map={self.deps.parent}=/build")

    def cross_env(self, cc: str | None = None, **extra) -> dict:
        cc = cc or self.cc()
        return self.env(CC=cc, CPP=f"{cc} -E", AR=f"llvm-ar-{LLVM_VERSION}",
                        RANLIB=f"llvm-ranlib-{LLVM_VERSION}", **extra)

    # ---- fetch -------------------------------------------------------------------------
    def fetch(self):
        for item in (self.spec, *LIBS.values()):
            fetch_orig(item, self.srcdir, self.apt)
        fetch_deb(WASI_LIBC, self.srcdir, self.apt)
        log("sources ok")

    # ---- sysroot & tools ---------------------------------------------------------------
    def sysroot_step(self):
        self.tools.mkdir(parents=True, exist_ok=True)
        for tool in ("llvm-ar", "llvm-ranlib", "llvm-nm", "llvm-objcopy", "llvm-strip",
                     "llvm-profdata", "wasm-ld"):
            link = self.tools / tool
            if not link.exists():
                link.symlink_to(f"/usr/bin/{tool}-{LLVM_VERSION}")
        if (self.sysroot / "lib" / "wasm32-wasi" / "libc.a").exists():
            return
        root = self.work / "sysroot"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        run(["dpkg", "-x", str(self.srcdir / WASI_LIBC["file"]), str(root)])

    # ---- libraries ---------------------------------------------------------------------
    def _unpack(self, tarball: Path, into: Path) -> Path:
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir(parents=True)
        run(["tar", "-C", str(into), "-xf", str(tarball), "--strip-components=1"])
        return into

    def _compile_lib(self, name: str, srcdir: Path, sources: list[str], headers: list[str],
                     cflags: str = ""):
        objs = []
        for s in sources:
            obj = srcdir / (Path(s).stem + ".o")
            run(f"{self.deps_cc} {OPT} {cflags} -c {s} -o {obj}", cwd=srcdir,
                env=self.env(), log_to=self.logs / f"{name}.log")
            objs.append(str(obj))
        (self.deps / "lib").mkdir(parents=True, exist_ok=True)
        (self.deps / "include").mkdir(parents=True, exist_ok=True)
        lib = self.deps / "lib" / f"lib{name}.a"
        lib.unlink(missing_ok=True)
        # D: deterministic archive (no timestamps, uids)
        run([f"llvm-ar-{LLVM_VERSION}", "rcsD", str(lib), *objs], env=self.env())
        for h in headers:
            shutil.copy(srcdir / h, self.deps / "include" / Path(h).name)

    def deps_step(self):
        self.logs.mkdir(parents=True, exist_ok=True)
        build = self.deps.parent / "deps-src"
        if not (self.deps / "lib" / "libz.a").exists():
            d = self._unpack(self.srcdir / LIBS["zlib"]["file"], build / "zlib")
            self._compile_lib("z", d, ["adler32.c", "compress.c", "crc32.c", "deflate.c",
                                       "gzclose.c", "gzlib.c", "gzread.c", "gzwrite.c",
                                       "infback.c", "inffast.c", "inflate.c", "inftrees.c",
                                       "trees.c", "uncompr.c", "zutil.c"],
                              ["zlib.h", "zconf.h"], "-DHAVE_UNISTD_H -DHAVE_STDARG_H")
        if not (self.deps / "lib" / "libbz2.a").exists():
            d = self._unpack(self.srcdir / LIBS["bzip2"]["file"], build / "bzip2")
            self._compile_lib("bz2", d, ["blocksort.c", "huffman.c", "crctable.c",
                                         "randtable.c", "compress.c", "decompress.c", "bzlib.c"],
                              ["bzlib.h"], "-D_FILE_OFFSET_BITS=64")
        if not (self.deps / "lib" / "liblzma.a").exists():
            d = self._unpack(self.srcdir / LIBS["xz"]["file"], build / "xz")
            env = self.cross_env(self.deps_cc, CFLAGS=OPT)
            run(["./configure", "--host=wasm32-unknown-wasi", f"--prefix={self.deps}",
                 "--disable-shared", "--enable-static", "--disable-threads", "--disable-xz",
                 "--disable-xzdec", "--disable-lzmadec", "--disable-lzmainfo",
                 "--disable-lzma-links", "--disable-scripts", "--disable-doc", "--disable-nls",
                 "--disable-rpath"], cwd=d, env=env, log_to=self.logs / "xz.log")
            run(["make", f"-j{self.jobs}", "-C", "src/liblzma"], cwd=d, env=env,
                log_to=self.logs / "xz.log")
            run(["make", "-C", "src/liblzma", "install"], cwd=d, env=env,
                log_to=self.logs / "xz.log")
        if not (self.deps / "lib" / "libsqlite3.a").exists():
            self._sqlite(build)  # both versions need it for _sqlite3: a failure stops the build

    def _sqlite(self, build: Path):
        # Debian's orig tarball is SQLite's full source tree: the amalgamation (sqlite3.c) is
        # generated natively (needs tclsh), then compiled for wasm32-wasi.
        d = self._unpack(self.srcdir / LIBS["sqlite"]["file"], build / "sqlite")
        nat = d / "native"
        nat.mkdir()
        run(["../configure", "--disable-shared"], cwd=nat, env=self.env(),
            log_to=self.logs / "sqlite.log")
        run(["make", f"-j{self.jobs}", "sqlite3.c"], cwd=nat, env=self.env(),
            log_to=self.logs / "sqlite.log")
        # Normal locking through the "unix" VFS, whose lock requests wasi/sqlite3_wasi.c
        # answers (two connections to one file in one process lock as on Linux); the shared
        # cache stays in (3.11's _sqlite3 requires sqlite3_enable_shared_cache).
        flags = ("-DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_WAL "
                 "-DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_JSON1 "
                 "-DSQLITE_TEMP_STORE=3 -DSQLITE_OMIT_POPEN "
                 "-D_WASI_EMULATED_GETPID -D_WASI_EMULATED_MMAN -DSQLITE_MAX_MMAP_SIZE=0 "
                 "-DSQLITE_NOHAVE_SYSTEM "
                 "-DSQLITE_DEFAULT_UNIX_VFS='\"unix\"' -DSQLITE_EXTRA_INIT=boxer_sqlite3_init "
                 f"-I{nat} -ffile-prefix-map={HERE}=/toolchain")
        self._compile_lib("sqlite3", nat, [str(HERE / SQLITE_WASI)], ["sqlite3.h"], flags)

    # ---- native build python -----------------------------------------------------------
    @property
    def native(self) -> Path:
        return self.work / "native"

    @property
    def src(self) -> Path:
        return self.work / "cpython"

    def unpack_cpython(self):
        if not (self.src / "configure").exists():
            self._unpack(self.srcdir / self.spec["file"], self.src)
            # versions before CPython's WASI port: our patches, in order
            for patch in sorted((HERE / "patches" / self.version).glob("*.patch")):
                run(["patch", "-p1", "-i", str(patch)], cwd=self.src)

    def native_step(self):
        self.unpack_cpython()
        self.logs.mkdir(parents=True, exist_ok=True)
        if (self.native / "python").exists():
            return
        self.native.mkdir(parents=True, exist_ok=True)
        # Only a tool (freezing, .pyc compiling): -O1 without debug data builds faster and
        # produces the same bytecode.
        env = self.env(CC="gcc")
        run([str(self.src / "configure"), f"--prefix={self.work / 'native-install'}",
             "--without-ensurepip", "OPT=-DNDEBUG -O1 -g0"], cwd=self.native, env=env,
            log_to=self.logs / "native.log")
        run(["make", f"-j{self.jobs}"], cwd=self.native, env=env,
            log_to=self.logs / "native.log")

    # ---- cross build -------------------------------------------------------------------
    @property
    def host(self) -> Path:
        return self.work / "host"

    def configure_args(self) -> list[str]:
        if self.spec.get("build_python_on_path"):
            # wasi-libc has no getaddrinfo, which 3.9's IPv6 support requires
            # 30-bit digits for ints, as 3.11 has everywhere (3.9 picks 15 bits on 32-bit platforms)
            args = [f"--host={self.spec['host']}", "--build=x86_64-pc-linux-gnu",
                    f"--prefix={PREFIX}", "--without-ensurepip", "--disable-ipv6", "--enable-big-digits=30"]
        else:
            args = [f"--host={self.spec['host']}", "--build=x86_64-pc-linux-gnu",
                    f"--with-build-python={self.native / 'python'}", f"--prefix={PREFIX}",
                    "--without-ensurepip", "--disable-test-modules"]
        if self.lto:
            args.append(f"--with-lto={self.lto}")
        if self.pymalloc:
            args.append("--with-pymalloc")
        return args

    def configure_env(self) -> dict:
        inc, lib = self.deps / "include", self.deps / "lib"
        ldflags = " ".join((["-Wl,--lto-O3"] if self.lto else [])
                           + [f"-Wl,--wrap={f}" for f in WRAPPED]
                           + ([self.spec["ldflags"]] if "ldflags" in self.spec else []))
        site = (HERE / self.spec["site"] if "site" in self.spec
                else self.src / "Tools" / "wasm" / "config.site-wasm32-wasi")
        env = self.cross_env(
            # wasi/config.site reads CPython's own site file, then says what WASI_OVERRIDES adds
            CONFIG_SITE=str(HERE / "wasi" / "config.site"),
            BOXER_CPYTHON_SITE=str(site),
            OPT=OPT,
            CFLAGS=" ".join([self.prefix_map, self.spec.get("cflags", "")]).strip(),
            LDFLAGS=ldflags,
            # relative to the build directory, where configure's tests and make link
            LIBS=" ".join([*(Path(c).with_suffix(".o").name for c in self.overrides),
                           self.spec.get("libs", "")]).strip(),
            # No host library may leak in: pkg-config sees only our own (none), every library
            # is given explicitly.
            PKG_CONFIG_LIBDIR=str(self.deps / "lib" / "pkgconfig-none"),
            PKG_CONFIG_PATH="",
            ZLIB_CFLAGS=f"-I{inc}", ZLIB_LIBS=f"-L{lib} -lz",
            BZIP2_CFLAGS=f"-I{inc}", BZIP2_LIBS=f"-L{lib} -lbz2",
            LIBLZMA_CFLAGS=f"-I{inc}", LIBLZMA_LIBS=f"-L{lib} -llzma",
            HOSTRUNNER="false",
        )
        if self.spec.get("build_python_on_path"):
            # 3.9's configure takes this as given instead of looking for python3.9 on PATH
            # (the value it would make, with the native build python)
            env["PYTHON_FOR_BUILD"] = (
                "_PYTHON_PROJECT_BASE=$(abs_builddir) _PYTHON_HOST_PLATFORM=$(_PYTHON_HOST_PLATFORM) "
                "PYTHONPATH=$(shell test -f pybuilddir.txt && echo $(abs_builddir)/`cat pybuilddir.txt`:)"
                "$(srcdir)/Lib _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata_$(ABIFLAGS)_$(MACHDEP)_$(MULTIARCH) "
                f"{self.native / 'python'}")
        if (lib / "libsqlite3.a").exists():
            env.update(LIBSQLITE3_CFLAGS=f"-I{inc}", LIBSQLITE3_LIBS=f"-L{lib} -lsqlite3")
        return env

    @property
    def overrides(self) -> list[str]:
        return [*WASI_OVERRIDES, *self.spec.get("compat", [])]

    def overrides_step(self):
        """Compile WASI_OVERRIDES into the build directory (LIBS names them there)."""
        self.host.mkdir(parents=True, exist_ok=True)
        for c in self.overrides:
            obj = self.host / Path(c).with_suffix(".o").name
            run(f"{self.cc(f'-ffile-prefix-map={HERE}=/toolchain')} {OPT} -Wall -Werror "
                f"-c {HERE / c} -o {obj}", env=self.env())

    def configure_step(self):
        self.unpack_cpython()
        self.overrides_step()
        if (self.host / "Makefile").exists():
            return
        if "setup_local" in self.spec:
            (self.host / "Modules").mkdir(parents=True, exist_ok=True)
            shutil.copy(HERE / self.spec["setup_local"], self.host / "Modules" / "Setup.local")
        # A relative path to configure: the build records paths relative to it.
        run([os.path.relpath(self.src / "configure", self.host), *self.configure_args()],
            cwd=self.host, env=self.configure_env(), log_to=self.logs / "configure.log")

    def make_step(self):
        run(["make", f"-j{self.jobs}", *self.make_vars()], cwd=self.host,
            env=self.configure_env(),
            log_to=self.logs / "make.log")

    def make_vars(self) -> list[str]:
        # DEPS: where Setup.local (3.9) finds the libraries' headers and archives. The -include
        # names this checkout, which the objects' DWARF records where a source calls what the
        # header declares: mapped, as ThinLTO's promoted names hash the object
        return [*self.spec.get("make_vars", []),
                *([f"DEPS={self.deps}"] if "setup_local" in self.spec else []),
                *([f"CFLAGS_NODIST=-include {HERE / self.spec['compat_include']} -ffile-prefix-map={HERE}=/toolchain"]
                  if "compat_include" in self.spec else [])]

    def install_step(self):
        shutil.rmtree(self.staging, ignore_errors=True)
        # make install compiles every .py at three optimization levels; the zip gets its own
        # .pyc (package), so compileall is told not to recurse (-l): minutes saved.
        run(["make", *self.spec.get("install_targets", ["install"]), f"DESTDIR={self.staging}",
             "COMPILEALL_OPTS=-j2 -l -q",
             *self.make_vars()],
            cwd=self.host, env=self.configure_env(), log_to=self.logs / "install.log")

    # ---- package -----------------------------------------------------------------------
    @property
    def module_name(self) -> str:
        return f"python{self.version}.wasm"

    @property
    def zip_name(self) -> str:
        return f"python{self.version.replace('.', '')}.zip"

    def package_step(self):
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        wasm = self.host / self.spec.get("exe", "python.wasm")
        module = self.out / self.module_name
        run([f"llvm-objcopy-{LLVM_VERSION}", "--only-keep-debug", str(wasm),
             str(self.work / (self.module_name + ".debug"))])
        run([f"llvm-objcopy-{LLVM_VERSION}", "--strip-debug", str(wasm), str(module)])
        # The stdlib compiled by the build python of the same version (same magic number).
        lib = self.staging / PREFIX.lstrip("/") / "lib" / f"python{self.version}"
        # Without -E, so PYTHONHASHSEED=0 holds (before 3.11 marshal writes a frozenset constant
        # in hash order); every other PYTHON* variable of the caller is dropped instead.
        env = {k: v for k, v in self.env().items() if not k.startswith("PYTHON")}
        run([str(self.native / "python"), "-S", str(HERE / "pack_stdlib.py"), str(lib),
             f"{PREFIX}/lib/python{self.version}", str(self.out / self.zip_name),
             str(SOURCE_DATE_EPOCH), "--map", f"{self.work}=/build",
             "--map", f"{self.deps.parent}=/build-root",
             # 3.9's -include of wasi/compat-3.9.h names this checkout
             "--map", f"{HERE}=/toolchain"], env={**env, "PYTHONHASHSEED": "0"})
        self.provenance()

    def provenance(self):
        def tool_version(cmd):
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]

        def deb_version(pkg):
            return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                                  capture_output=True, text=True).stdout

        mf = (self.host / "Makefile").read_text()

        def mkvar(name):
            for line in mf.splitlines():
                key, eq, value = line.partition("=")
                if eq and key.strip() == name:
                    return self.unmapped(" ".join(value.split()))
            return None

        sources = {"cpython": {k: self.spec[k] for k in ("package", "suite", "file", "sha256")},
                   "wasi-libc": dict(WASI_LIBC),
                   "toolchain/cpython": {c: {"sha256": sha256(HERE / c)}
                                         for c in [*self.overrides, SQLITE_WASI, "wasi/config.site",
                                                   *[self.spec[k] for k in ("site", "setup_local",
                                                                            "compat_include")
                                                     if k in self.spec],
                                                   *(str(q.relative_to(HERE)) for q in sorted(
                                                       (HERE / "patches" / self.version).glob("*.patch")))]}}
        for name, item in LIBS.items():
            if name != "sqlite" or (self.deps / "lib" / "libsqlite3.a").exists():
                sources[name] = dict(item)
        outputs = {p.name: {"sha256": sha256(p), "size": p.stat().st_size}
                   for p in sorted(self.out.iterdir()) if p.name != "provenance.json"}
        prov = {
            "python": self.spec["full"],
            "target": "wasm32-wasip1",
            "sources": sources,
            "toolchain": {
                "clang": tool_version([f"clang-{LLVM_VERSION}", "--version"]),
                "debian_packages": {p: deb_version(p) for p in
                                    (f"clang-{LLVM_VERSION}", f"lld-{LLVM_VERSION}",
                                     f"llvm-{LLVM_VERSION}", f"libclang-rt-{LLVM_VERSION}-dev-wasm32")},
            },
            "libc_overrides": {"files": list(self.overrides), "wrapped": list(WRAPPED)},
            "configure": self.configure_args()[:2] + ["--with-build-python=<native build>"]
                          + self.configure_args()[3:],
            "flags": {"CONFIG_SITE": "toolchain/cpython/wasi/config.site, which reads "
                                     "Tools/wasm/config.site-wasm32-wasi",
                      **{v: mkvar(v) for v in ("OPT", "BASECFLAGS", "CONFIGURE_CFLAGS",
                                               "CONFIGURE_CFLAGS_NODIST", "CONFIGURE_LDFLAGS",
                                               "CONFIGURE_LDFLAGS_NODIST", "LIBS")},
                      "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
            "stdlib_zip": {"pyc": "unchecked-hash, optimization level 0, sourceless",
                           "excluded": sorted(ZIP_EXCLUDE_DIRS | ZIP_EXCLUDE_FILES)
                           + [p + "*" for p in ZIP_EXCLUDE_PREFIXES]},
            "debug_data": "stripped (llvm-objcopy --strip-debug); the name section is kept",
            "outputs": outputs,
        }
        (self.out / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=False) + "\n")
        log("wrote", self.out / "provenance.json")
        for k, v in outputs.items():
            log(f"  {k}: {v['size']} bytes sha256 {v['sha256']}")

    # ---- vendor / check ----------------------------------------------------------------
    @property
    def vendored(self) -> Path:
        return RUNTIMES / f"cpython-{self.version}"

    def vendor_step(self):
        self.vendored.mkdir(parents=True, exist_ok=True)
        for f in (self.module_name, self.zip_name):
            data = (self.out / f).read_bytes()
            # xz with CRC64, no timestamps in the format: the compressed file is deterministic.
            comp = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
            (self.vendored / (f + ".xz")).write_bytes(comp)
            log(f"vendored {f}.xz: {len(comp)} bytes ({len(data)} decompressed)")
        shutil.copy(self.out / "provenance.json", self.vendored / "provenance.json")

    def check_step(self):
        want = json.loads((self.vendored / "provenance.json").read_text())["outputs"]
        got = json.loads((self.out / "provenance.json").read_text())["outputs"]
        bad = 0
        for name, w in want.items():
            g = got.get(name)
            same = g is not None and g["sha256"] == w["sha256"]
            bad += not same
            log(f"{'same     ' if same else 'DIFFERENT'} {name}: vendored {w['sha256'][:16]}… "
                f"rebuilt {g['sha256'][:16] if g else 'missing'}…")
        if bad:
            sys.exit(f"{bad} output(s) differ from the vendored runtime")
        log(f"cpython-{self.version}: the rebuild is byte-identical to the vendored runtime")

    def clean(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def clean_deps(self):
        shutil.rmtree(self.deps, ignore_errors=True)
        shutil.rmtree(self.deps.parent / "deps-src", ignore_errors=True)


STEPS = ["fetch", "sysroot", "deps", "native", "configure", "make", "install", "package"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", default="3.13", choices=sorted(VERSIONS))
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("BUILD_ROOT", "/work/build")))
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--lto", choices=["thin", "full", "none"], default="default",
                    help="LTO mode (default: the version's, VERSIONS[...]['lto'])")
    ap.add_argument("--no-pymalloc", dest="pymalloc", action="store_false")
    ap.add_argument("steps", nargs="+")
    a = ap.parse_args()
    b = Build(a.version, a.work, a.jobs, None if a.lto == "none" else a.lto, a.pymalloc)
    steps = []
    for s in a.steps:
        steps += STEPS if s == "all" else [s]
    for s in steps:
        t = time.time()
        log(f"== cpython-{a.version}: {s}")
        fn = {"sysroot": b.sysroot_step, "deps": b.deps_step, "native": b.native_step,
              "configure": b.configure_step, "make": b.make_step, "install": b.install_step,
              "package": b.package_step, "vendor": b.vendor_step, "check": b.check_step,
              "fetch": b.fetch, "clean": b.clean, "clean-deps": b.clean_deps, "provenance": b.provenance}[s]
        fn()
        log(f"== {s} done in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
