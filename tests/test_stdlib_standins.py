"""What CPython for WASI lacks and a container has, on every python base through the real CLI
(boxer build, boxer run): fcntl (Django, gunicorn, filelock import it), pwd/grp/getpass and
os.getuid answering from the image's /etc/passwd and USER, concurrent.futures.thread and ssl,
which the VMware 3.12 build's stdlib left out (issue 16 items 8; no runtime has OpenSSL). The stand-ins are
toolchain/runtimes/guest/; dockerfile/bases.py gives them to every python base."""
from __future__ import annotations

import pytest

from boxer_py.dockerfile.bases import PASSWD

VERSIONS = ["3.11", "3.12", "3.13"]

# portalocker locks with fcntl.flock, as Django's django.core.files.locks does.
FCNTL = r'''
import errno, fcntl, os, portalocker
with portalocker.Lock("/tmp/app.lock", "w", timeout=1) as f:
    f.write("mine")
    print("locked", portalocker.LOCK_EX == fcntl.LOCK_EX)
print("released", open("/tmp/app.lock").read())
with open("/tmp/f", "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.lockf(f.fileno(), fcntl.LOCK_UN)
    fcntl.fcntl(f, fcntl.F_SETFL, fcntl.fcntl(f, fcntl.F_GETFL) | os.O_NONBLOCK)
    print("nonblocking", not os.get_blocking(f.fileno()))
    for call in (lambda: fcntl.ioctl(f, 0x5413), lambda: fcntl.fcntl(f, fcntl.F_SETFL, os.O_APPEND)):
        try:
            call()
        except OSError as e:
            print(errno.errorcode[e.errno], e.strerror)
fd = os.open("/tmp/g", os.O_CREAT | os.O_WRONLY)
os.close(fd)
try:
    fcntl.flock(fd, fcntl.LOCK_EX)
except OSError as e:
    print("closed", errno.errorcode[e.errno])
print(fcntl.LOCK_EX, fcntl.F_GETFL, fcntl.F_SETLKW, fcntl.FD_CLOEXEC)
'''

WHOAMI = r'''
import getpass, grp, os, pwd
me = pwd.getpwuid(os.getuid())
print(os.getuid(), os.getgid(), getpass.getuser(), me.pw_name, me.pw_dir, grp.getgrgid(os.getgid()).gr_name)
print(os.path.expanduser("~root"), os.path.expanduser("~app"), pwd.getpwnam("root")[:4])
try:
    pwd.getpwnam("nosuchuser")
except KeyError as e:
    print("KeyError", e)
'''

THREADS = r'''
import concurrent.futures.thread
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(max_workers=2) as pool:
    try:
        print(pool.submit(sum, [1, 2]).result())
    except RuntimeError as e:
        print("RuntimeError", e)
print(concurrent.futures.thread.BrokenThreadPool.__mro__[1].__name__)
'''

# As root, tarfile restores owners (os.chown) whenever os.geteuid() is 0: pip's and the sandbox's
# sdist extraction do this; shutil.chown too. A missing file is still an error.
OWNERS = r'''
import io, os, shutil, tarfile
data = io.BytesIO()
with tarfile.open(fileobj=data, mode="w") as t:
    info = tarfile.TarInfo("pkg/a.txt"); info.size = 2; info.uid = info.gid = 1000
    t.addfile(info, io.BytesIO(b"hi"))
data.seek(0)
with tarfile.open(fileobj=data) as t:
    t.extractall("/tmp/x", filter="data") if hasattr(tarfile, "data_filter") else t.extractall("/tmp/x")
shutil.chown("/tmp/x/pkg/a.txt", "root", "root")
print(os.geteuid(), open("/tmp/x/pkg/a.txt").read())
try:
    os.chown("/tmp/nosuch", 0, 0)
except FileNotFoundError as e:
    print("FileNotFoundError", e.filename)
'''

# gunicorn names AF_UNIX at import, neo4j imports SO_KEEPALIVE and getservbyname, celery calls
# gethostname at import: each exists, and
# what WASI cannot do fails when used.
SOCKETS = r'''
import socket
print(socket.AF_UNIX.name, socket.SO_KEEPALIVE, socket.getservbyname("https", "tcp"), socket.getservbyport(80))
print(socket.gethostname())
try:
    socket.getservbyname("nosuchservice")
except OSError as e:
    print(e)
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
except OSError as e:
    print("no unix sockets:", type(e).__name__)
'''


# What libraries do with ssl at import and start-up (urllib3 builds its contexts as below, aiohttp
# and httpx make one at import or client creation): all of it works without a network, and the
# first connection says there is none. No runtime has OpenSSL; the 3.12 one has no ssl module.
SSL = r'''
import asyncio.sslproto, http.client, ssl, urllib.request, urllib3
ctx = ssl.create_default_context()
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
ctx.load_verify_locations(cafile="/etc/ssl/certs/ca-certificates.crt")
ctx.set_alpn_protocols(["http/1.1"])
print(ssl.Purpose.SERVER_AUTH.name, ctx.verify_mode.name, ctx.check_hostname, ssl.HAS_SNI,
      issubclass(ssl.SSLCertVerificationError, ValueError), hasattr(http.client, "HTTPSConnection"))
for fetch in (lambda: urllib.request.urlopen("https://example.com"),
              lambda: urllib3.PoolManager().request("GET", "https://example.com", retries=False)):
    try:
        fetch()
    except Exception as e:
        print(type(e).__name__, "no network" in str(e), "--allow-net" in str(e))
try:
    ctx.wrap_socket(object(), server_hostname="example.com")
except ssl.SSLError as e:
    print(e.strerror)
'''

# celery's billiard imports multiprocessing and multiprocessing.process at start-up, kombu
# multiprocessing.util's Finalize and register_after_fork: they import on every base (the 3.12
# runtime's stdlib has no multiprocessing: boxer's own), a finalizer runs at exit, and starting
# a process fails with ENOSYS. (billiard.util, which celery imports too, needs cffi or ctypes.)
PROCESSES = r'''
import errno, multiprocessing, multiprocessing.util as util
import billiard, billiard.process
from multiprocessing import AuthenticationError, BufferTooShort, ProcessError, TimeoutError
print(multiprocessing.current_process().name, billiard.current_process().name, multiprocessing.cpu_count() >= 1)
util.Finalize(None, print, args=("finalized at exit",), exitpriority=10)
util.register_after_fork(util, lambda module: print("never: a guest does not fork"))
print(util.is_exiting(), issubclass(TimeoutError, ProcessError), util.get_logger().name)
for start in (lambda: multiprocessing.Process(target=print).start(),
              lambda: multiprocessing.get_context("spawn").Process(target=print).start()):
    try:
        start()
    except OSError as e:
        print(errno.errorcode[e.errno], e.strerror)
'''


@pytest.fixture(scope="module", params=VERSIONS)
def image(request, tmp_path_factory, cli_build):
    """An app on each python base: portalocker from pip, a user made by useradd, USER app."""
    ctx = tmp_path_factory.mktemp(f"standins{request.param}")
    (ctx / "Dockerfile").write_text(
        f"FROM python:{request.param}-slim\nRUN pip install portalocker==2.8.2 urllib3==2.2.3 billiard==4.2.1\nRUN useradd -m app\n"
        "COPY *.py /app/\nRUN python /app/whoami.py > /app/as-root.txt\nUSER app\nWORKDIR /app\n"
        'CMD ["python", "whoami.py"]\n')
    for name, code in (("fcntl_use.py", FCNTL), ("whoami.py", WHOAMI), ("threads.py", THREADS), ("owners.py", OWNERS),
                       ("sockets.py", SOCKETS), ("ssl_use.py", SSL), ("processes.py", PROCESSES)):
        (ctx / name).write_text(code)
    out = ctx / "app.wasm"
    return cli_build(ctx, out, timeout=600)


def test_fcntl_imports_and_locks_work_as_for_a_single_process(boxer, image):
    r = boxer("run", "--rm", str(image), "python", "fcntl_use.py")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == ("locked True\nreleased mine\nnonblocking True\n"
                        "ENOSYS ioctl is not available: WebAssembly (WASI) has no such call\n"
                        "ENOSYS fcntl(F_SETFL) of a status flag other than O_NONBLOCK is not available: "
                        "WebAssembly (WASI) has no such call\n"
                        "closed EBADF\n2 3 7 1\n")


def test_users_answer_from_the_images_passwd_and_user(boxer, image):
    # USER app (useradd gave it 1000, as Debian's does), then --user overrides it, as in Docker.
    r = boxer("run", "--rm", str(image))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == ("1000 1000 app app /home/app app\n/root /home/app ('root', 'x', 0, 0)\n"
                        "KeyError \"getpwnam(): name not found: 'nosuchuser'\"\n")
    r = boxer("run", "--rm", "--user", "root", str(image), "python", "-u", "whoami.py")
    assert r.stdout.splitlines()[0] == "0 0 root root /root root", r.stderr
    r = boxer("run", "--rm", "--user", "1000:0", str(image))
    assert r.stdout.splitlines()[0] == "1000 0 app app /home/app root", r.stderr
    # A RUN before USER ran as root; the base's /etc/passwd is Docker's python image's root entry.
    r = boxer("run", "--rm", str(image), "python", "-c", "print(open('as-root.txt').read().splitlines()[0]);"
              "print(open('/etc/passwd').read())")
    assert r.stdout == "0 0 root root /root root\n" + PASSWD + "app:x:1000:1000::/home/app:/bin/sh\n\n"


def test_concurrent_futures_thread_imports_and_a_pool_fails_only_at_thread_start(boxer, image):
    # No runtime here can start a thread: the pool imports and submit() fails as CPython's does.
    r = boxer("run", "--rm", str(image), "python", "threads.py")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == "RuntimeError can't start new thread\nBrokenExecutor\n"


def test_a_root_extraction_restores_owners_as_in_a_container(boxer, image):
    r = boxer("run", "--rm", "--user", "root", str(image), "python", "owners.py")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == "0 hi\nFileNotFoundError /tmp/nosuch\n"


def test_socket_names_that_libraries_import_exist(boxer, image):
    r = boxer("run", "--rm", str(image), "python", "sockets.py")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == "AF_UNIX 9 443 http\nlocalhost\nservice/proto not found\nno unix sockets: OSError\n"
    r = boxer("run", "--rm", "-e", "HOSTNAME=web-1", str(image), "python", "-c", "import socket; print(socket.gethostname())")
    assert r.stdout == "web-1\n", r.stderr


def test_ssl_imports_and_a_connection_says_there_is_no_network(boxer, image):
    r = boxer("run", "--rm", str(image), "python", "ssl_use.py")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == ("SERVER_AUTH CERT_REQUIRED True True True True\nURLError True True\nNameResolutionError True True\n"
                        "TLS is not available: this sandbox has no network (--allow-net HOST gives it one, and the "
                        "host then does TLS for it)\n")


def test_multiprocessing_imports_with_what_celery_uses_and_a_process_fails_at_start(boxer, image):
    r = boxer("run", "--rm", str(image), "python", "processes.py")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["MainProcess MainProcess True", "False True multiprocessing"]
    assert lines[2:] == ["ENOSYS multiprocessing cannot start a process: a WebAssembly guest has no processes"] * 2 + [
        "finalized at exit"]
