"""A typical small app: third-party packages from requirements.txt, a file made at build time."""
import attr
import six


@attr.s(auto_attribs=True)
class Status:
    state: str
    python: str


with open("data/status") as f:
    status = Status(f.read().strip(), six.PY3 and "py3" or "py2")
print(f"app {status.state}: {status} (six {six.__version__}, attrs {attr.__version__})")
