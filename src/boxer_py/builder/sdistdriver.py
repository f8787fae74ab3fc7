"""The guest side of a source build (sdist.py): a script the image's CPython runs under
Wasmtime. There is no subprocess in the guest, so the PEP 517 hooks run in-process."""

# Runs in the image's CPython under Wasmtime: no subprocess, so the PEP 517 hooks run in-process.
# argv: prepare|build|build-checked WORK. WORK/job.json: {"source": guest path, "envs": [dirs]}.
DRIVER = r'''
import errno, importlib, json, os, re, site, sys, tarfile, traceback, zipfile

# WASI has no chmod (CPython for WASI answers ENOSYS) and a build's file modes do not matter:
# the host makes the wheel again. setuptools chmods what it writes.
_chmod = os.chmod
def _chmod_if_possible(*args, **kwargs):
    try:
        _chmod(*args, **kwargs)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
os.chmod = _chmod_if_possible

def out(work, name, data):
    with open(os.path.join(work, "out", name), "w") as f:
        json.dump(data, f)

def project_dir(work, source):
    if not os.path.exists(source):
        raise SystemExit("error: %s does not exist in the image" % source)
    if os.path.isdir(source):
        top = source
    else:
        dest = os.path.join(work, "src")
        os.makedirs(dest, exist_ok=True)
        if source.endswith(".zip"):
            with zipfile.ZipFile(source) as z:
                for name in z.namelist():
                    if name.startswith("/") or ".." in name.split("/"):
                        raise SystemExit("error: the archive has a member outside its directory: %r" % name[:80])
                z.extractall(dest)
        else:
            with tarfile.open(source) as t:
                if hasattr(tarfile, "data_filter"):
                    t.extractall(dest, filter="data")
                else:  # CPython before 3.11.4 / 3.12: only plain members, inside the directory
                    plain = []
                    for m in t.getmembers():
                        if m.name.startswith("/") or ".." in m.name.split("/"):
                            raise SystemExit("error: the archive has a member outside its directory: %r" % m.name[:80])
                        if m.isfile() or m.isdir():
                            m.mode = 0o755 if m.isdir() else 0o644
                            plain.append(m)
                    t.extractall(dest, members=plain)
        entries = [e for e in os.listdir(dest) if os.path.isdir(os.path.join(dest, e))]
        top = os.path.join(dest, entries[0]) if len(entries) == 1 else dest
    if not (os.path.isfile(os.path.join(top, "pyproject.toml")) or os.path.isfile(os.path.join(top, "setup.py"))):
        raise SystemExit("error: %s is not a Python project (no pyproject.toml or setup.py)" % source)
    return top

def prepare(work, job):
    top = project_dir(work, job["source"])
    system = {}
    path = os.path.join(top, "pyproject.toml")
    if os.path.isfile(path):
        try:
            import tomllib
        except ImportError:  # CPython before 3.11: tomli, which the host provides when asked
            sys.path[:0] = job["envs"]
            try:
                import tomli as tomllib
            except ImportError:
                out(work, "need.json", {"requires": ["tomli"]})
                sys.exit(3)
        with open(path, "rb") as f:
            system = tomllib.load(f).get("build-system", {})
    if "build-backend" in system:
        backend, requires = system["build-backend"], system.get("requires", [])
    else:
        backend, requires = "setuptools.build_meta:__legacy__", system.get("requires", ["setuptools>=40.8.0"])
    out(work, "prepare.json", {"dir": top, "backend": backend, "requires": list(requires),
                               "backend_path": list(system.get("backend-path", []))})

def build(work, job, check):
    with open(os.path.join(work, "out", "prepare.json")) as f:
        prep = json.load(f)
    top = prep["dir"]
    for env in job["envs"]:
        site.addsitedir(env)
        sys.path.remove(env)
        sys.path.insert(0, env)
    for p in reversed(prep["backend_path"]):
        full = os.path.normpath(os.path.join(top, p))
        if full != top and not full.startswith(top.rstrip("/") + "/"):
            raise SystemExit("error: backend-path %r is outside the project" % p)
        sys.path.insert(0, full)
    os.chdir(top)
    module, _, attr = prep["backend"].partition(":")
    backend = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        backend = getattr(backend, part)
    if check and hasattr(backend, "get_requires_for_build_wheel"):
        needed = list(backend.get_requires_for_build_wheel({}))
        from importlib import metadata
        have = {re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower()
                for d in metadata.distributions(path=job["envs"])}
        missing = [r for r in needed
                   if re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]*)", r).group(1)).lower() not in have]
        if missing:
            out(work, "need.json", {"requires": missing})
            sys.exit(3)
    dest = os.path.join(work, "out", "wheel")
    os.makedirs(dest, exist_ok=True)
    name = backend.build_wheel(dest, {})
    out(work, "result.json", {"wheel": name})

def main():
    mode, work = sys.argv[1], sys.argv[2]
    with open(os.path.join(work, "job.json")) as f:
        job = json.load(f)
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    if mode == "prepare":
        prepare(work, job)
    else:
        build(work, job, mode == "build-checked")

try:
    main()
except SystemExit as e:
    if isinstance(e.code, str):
        print(e.code, file=sys.stderr)
        sys.exit(1)
    raise
except BaseException as e:
    traceback.print_exc()
    print("error: %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""), file=sys.stderr)
    sys.exit(1)
'''
