"""The layering of src/boxer_py, checked: data flows one way, Dockerfile -> plan -> rootfs ->
image file -> runtime / browser / registry, and a stage never imports a later one.

The allowed directions are written down once, here (docs/architecture.md shows the same
picture). Every import counts, at the top of a module or inside a function.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "boxer_py"

# Each part of the package -> the parts it may import (besides itself).
LEAVES = {"errors", "locations"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "locations": set(),
    "image": LEAVES,
    "dockerfile": {"image"} | LEAVES,
    "shell": {"image"} | LEAVES,
    "runtime": {"image", "shell"} | LEAVES,  # shellrun: a shell-form command at run time
    "registry": {"image"} | LEAVES,
    "browser": {"image"} | LEAVES,
    "builder": {"dockerfile", "shell", "image"} | LEAVES,
    "api": {"builder", "runtime", "registry", "dockerfile", "image"} | LEAVES,
    "cli": {"api", "builder", "runtime", "registry", "browser", "dockerfile", "shell", "image"} | LEAVES,
    "__init__": {"api", "builder", "runtime", "registry", "image"} | LEAVES,
    "__main__": {"cli"},
}


def _part(module: Path) -> str:
    rel = module.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(source: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every boxer_py module `source` imports."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("boxer_py")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "relative"))
            elif node.module == "boxer_py":
                found += [(node.lineno, f"boxer_py.{a.name}") for a in node.names]
            elif node.module and node.module.startswith("boxer_py"):
                found.append((node.lineno, node.module))
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_is_in_the_layering():
    parts = {_part(m) for m in _modules()}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED"


def test_imports_follow_the_layering():
    wrong = []
    for module in _modules():
        part = _part(module)
        for line, name in _imports(module):
            if name == "relative":
                wrong.append(f"{module.relative_to(PACKAGE)}:{line}: relative import (use boxer_py.<part>...)")
                continue
            target = name.split(".")[1] if "." in name else "__init__"
            if target != part and target not in ALLOWED[part]:
                wrong.append(f"{module.relative_to(PACKAGE)}:{line}: {part} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_entry_point_imports_only_the_standard_library_and_locations():
    """`boxer` starts in cli/client.py, which hands a repeated run to the run server before
    anything heavy loads: it may import nothing of boxer's but locations (and cli.main, late)."""
    client = PACKAGE / "cli" / "client.py"
    tree = ast.parse(client.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    ours = [n for n in names if n.startswith("boxer_py")]
    assert ours == ["boxer_py"] or set(ours) <= {"boxer_py", "boxer_py.locations"}, ours
    third_party = [n for n in names if n.split(".")[0] in {"click", "wasmtime", "jinja2", "requests", "mcp"}]
    assert not third_party


_LOADED = """
import sys
from boxer_py.cli.main import _dispatch
try:
    _dispatch(sys.argv[1:], None)
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.split('.')[0] in {'wasmtime', 'jinja2', 'requests', 'mcp'}))
"""


@pytest.mark.parametrize("args", [["images"], ["inspect", "--help"], ["build", "--help"], ["push", "--help"]])
def test_commands_that_run_no_guest_do_not_load_wasmtime(args, tmp_path):
    """Loading Wasmtime costs every command ~60 ms: only commands that run a guest pay it."""
    r = subprocess.run([sys.executable, "-c", _LOADED, *args], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    loaded = r.stdout.strip().splitlines()[-1]
    assert "wasmtime" not in loaded, loaded


def test_a_build_without_run_programs_does_not_load_wasmtime(tmp_path):
    """`boxer build` of a Dockerfile whose RUN lines the shell handles never starts the engine."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a.txt /a.txt\nRUN mkdir -p /data && echo hi > /data/x\n")
    (ctx / "a.txt").write_text("a\n")
    r = subprocess.run([sys.executable, "-c", _LOADED, "build", "-q", "-o", str(tmp_path / "x.wasm"), str(ctx)],
                       capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.wasm").is_file()
    assert "wasmtime" not in r.stdout.strip().splitlines()[-1], r.stdout


def test_no_source_file_is_over_600_lines():
    """A module does one thing and is readable in one sitting: past 600 lines, split it."""
    long = {str(m.relative_to(PACKAGE)): n for m in _modules() if (n := len(m.read_text().splitlines())) > 600}
    assert not long, long


def test_the_shell_and_the_public_api_have_no_import_cycle():
    """builtins are functions over shell.context.Context: they never import the interpreter."""
    builtins = PACKAGE / "shell" / "builtins.py"
    assert not [n for _, n in _imports(builtins) if n == "boxer_py.shell.interpreter"]


def test_every_public_name_resolves():
    import boxer_py
    missing = []
    for name in boxer_py.__all__:
        try:
            getattr(boxer_py, name)
        except (AttributeError, ImportError) as e:
            missing.append(f"{name}: {e}")
    assert not missing, "\n".join(missing)


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _module_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names `module` binds to another boxer_py module, and to a class (or other name) from one."""
    modules, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("boxer_py.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("boxer_py"):
            where = PACKAGE.parent.joinpath(*node.module.split("."))
            for a in node.names:
                is_module = (where / f"{a.name}.py").exists() or (where / a.name / "__init__.py").exists()
                (modules if is_module else names).add(a.asname or a.name)
    return modules, names


def _typed(function: ast.FunctionDef | ast.AsyncFunctionDef, classes: set[str], modules: set[str]) -> set[str]:
    """The parameters of `function` annotated with a class of another module (`Class`, `module.Class`)."""
    args = function.args
    return {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.annotation is not None
            and any(isinstance(n, ast.Name) and n.id in classes or isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name) and n.value.id in modules for n in ast.walk(a.annotation))}


def _kept(cls: ast.ClassDef, classes: set[str], modules: set[str]) -> set[str]:
    """Attributes `self.x` a class sets from such a parameter (`self.x = x`, `self.x, self.y = x, y`)."""
    kept = set()
    for function in (n for n in cls.body if isinstance(n, FUNCTIONS)):
        typed = _typed(function, classes, modules)
        for node in ast.walk(function):
            if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                continue
            target, value = node.targets[0], node.value
            both = isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts)
            pairs = zip(target.elts, value.elts, strict=True) if both else [(target, value)]
            kept |= {t.attr for t, v in pairs if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                     and t.value.id == "self" and isinstance(v, ast.Name) and v.id in typed}
    return kept


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def test_no_module_reaches_into_another_modules_private_names():
    """`x._name` where x is another boxer_py module, or an object typed as another module's class
    (a parameter, or `self.x` set from one): a module uses only what another makes public, so
    either can change its insides without breaking the other."""
    wrong = []
    for module in _modules():
        tree = ast.parse(module.read_text(), str(module))
        modules, classes = _module_names(tree)
        scopes: list[tuple[ast.AST, set[str], set[str]]] = [(tree, modules, set())]
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            kept = _kept(cls, classes, modules)
            scopes += [(f, _typed(f, classes, modules), kept) for f in cls.body if isinstance(f, FUNCTIONS)]
        scopes += [(f, _typed(f, classes, modules), set()) for f in tree.body if isinstance(f, FUNCTIONS)]
        for scope, objects, attributes in scopes:
            for node in ast.walk(scope):
                if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                    continue
                owner = node.value
                if isinstance(owner, ast.Name) and (owner.id in objects or owner.id in modules) or \
                        isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and \
                        owner.value.id == "self" and owner.attr in attributes:
                    wrong.append(f"{module.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert not wrong, "\n".join(sorted(set(wrong)))
