"""A client for the OCI distribution API (what Docker Hub, GHCR, ECR, Harbor and CNCF
distribution serve), over `requests`.

One `Registry` talks to one repository. It finds the scheme (https; plain http only with
`insecure` or on a loopback host, as Docker does), answers `Www-Authenticate` challenges
(Basic, and the Bearer token flow), skips blobs the registry already has (HEAD), uploads in
chunks (POST, PATCH with Content-Range, PUT ?digest=) and, when a chunk fails with a 5xx or a
cut connection, asks the upload where it stands (GET, `Range`) and resumes from there, or
starts the blob over when the registry lost the upload. Reads are retried too. It never
trusts what it gets: manifests are checked against the digest asked for (or the one the
registry names), blobs by the caller against their descriptors. Nor does it let the registry
decide how much it reads: every answer is streamed and read up to a cap (a manifest's
MAX_MANIFEST, a blob's declared size, which must itself be at most MAX_BLOB, MAX_BODY for
the rest), and redirects are followed here, without reading their bodies.
"""
from __future__ import annotations

import base64
import functools
import re
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests

from boxer_py.errors import AuthError, RegistryError
from boxer_py.image.imagefile import Descriptor, sha256
from boxer_py.registry import oci
from boxer_py.registry.credentials import Credential
from boxer_py.registry.reference import Reference

Progress = Callable[[str], None]
BlobProgress = Callable[[str, str, int, int], None]  # (short digest, Docker's status word, bytes done, bytes in all)
PUSHING, PUSHED, EXISTS, DOWNLOADING, PULLED = "Pushing", "Pushed", "Layer already exists", "Downloading", "Pull complete"
MANIFEST_ACCEPT = ", ".join([oci.MANIFEST, oci.INDEX, oci.DOCKER_MANIFEST, oci.DOCKER_LIST])
_PARAM = re.compile(r'(\w+)="([^"]*)"')
MAX_BODY = 1 << 20  # bytes read of any other answer (an error, a token); the rest is not read
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)


class _Retry(Exception):
    """A failure worth trying again (5xx, 429, a cut or timed-out connection)."""


@dataclass
class Options:
    insecure: bool = False
    chunk_size: int = 8 << 20
    retries: int = 6
    backoff: float = 0.25          # seconds before the first retry; doubles each time, at most 8
    timeout: float = 120.0
    progress: Progress = field(default=lambda _: None)             # messages: retries, the digest at the end
    blob: BlobProgress = field(default=lambda *_: None)            # each blob's state, as it goes
    mount: bool = True             # try a cross-repository mount before uploading a blob


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class _Body:
    """A chunk sent as a stream of known length (requests then still sends Content-Length), so
    its progress is told as it goes out, not only once per chunk. Iterable again on a resend."""
    PIECE = 256 << 10

    def __init__(self, data: bytes, sent: Callable[[int], None]):
        self.data, self.sent = data, sent

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        view = memoryview(self.data)
        for start in range(0, len(view), self.PIECE):
            yield view[start:start + self.PIECE]
            self.sent(min(start + self.PIECE, len(view)))


class _Session(requests.Session):
    """requests, minus its redirect handling: even with allow_redirects=False it reads a
    redirect's whole body (to find the next request). Registry._send follows them instead."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


class Registry:
    """One repository on one registry, with its auth state; `actions` is "pull" or "pull,push"."""

    def __init__(self, ref: Reference, actions: str, credential: Credential | None, options: Options | None = None):
        self.ref, self.actions, self.credential = ref, actions, credential
        self.options = options or Options()
        self.session = _Session()
        self.session.headers["User-Agent"] = "boxer-py"
        self.session.headers["Accept-Encoding"] = "identity"  # digests are of the bytes as sent
        self.session.verify = not self.options.insecure
        self.base = ""
        self.authorization: str | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.mount_from: tuple[str, ...] = ()   # repositories here that may hold our blobs (pull scope asked)

    # --- connection and auth -------------------------------------------------------------

    def _schemes(self) -> list[str]:
        return ["https", "http"] if self.options.insecure or self.ref.is_loopback else ["https"]

    def connect(self) -> None:
        """Find the scheme and authenticate (GET /v2/); a bad password fails here."""
        if self.base:
            return
        last: Exception | None = None
        for scheme in self._schemes():
            self.base = f"{scheme}://{self.ref.api_host}"
            try:
                response = self._send("GET", "/v2/")
            except requests.exceptions.SSLError as e:
                last = e
                continue
            except requests.RequestException as e:
                last = e
                if scheme == "https" and len(self._schemes()) > 1:
                    continue
                break
            if response.status_code == 401:
                self._authenticate(response)
                response = self._send("GET", "/v2/")
                if response.status_code == 401:
                    raise self._auth_failed()
            if response.status_code >= 400 and response.status_code != 404:
                raise RegistryError(f"{self.ref.registry}: /v2/ answered {response.status_code} "
                                    "(is this an OCI registry?)")
            return
        self.base = ""
        hint = "" if self.options.insecure else "; for a plain-http registry use --insecure"
        if isinstance(last, requests.exceptions.SSLError):
            raise RegistryError(f"{self.ref.registry}: TLS failed{hint}")
        raise RegistryError(f"{self.ref.registry}: cannot connect ({_reason(last)})")

    def _send(self, method: str, url: str, *, stream: bool = False, limit: int = MAX_BODY,
              **kwargs) -> requests.Response:
        """One request, redirects followed here (their bodies are never read). Unless `stream`,
        the answer's body is read now, at most `limit` bytes (`too_large` tells if there was more)."""
        headers = dict(kwargs.pop("headers", None) or {})
        url = urljoin(self.base, url)
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            # Credentials go only to the registry itself (same scheme, host and port): an
            # upload Location or a redirect may point at storage on another host.
            if self.authorization and _origin(url) == _origin(self.base):
                sent["Authorization"] = self.authorization
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # urllib3's InsecureRequestWarning under --insecure
                r = self.session.request(method, url, headers=sent, timeout=(10, self.options.timeout),
                                         stream=True, allow_redirects=False, **kwargs)
            if r.status_code not in _REDIRECTS or "Location" not in r.headers:
                if not stream:
                    _read_body(r, limit)
                return r
            r.close()
            url = urljoin(url, r.headers["Location"])
            kwargs.pop("params", None)  # the new URL is complete
            if r.status_code == 303 or (r.status_code in (301, 302) and method == "POST"):
                method = "GET"
                kwargs.pop("data", None)
        raise RegistryError(f"{self.ref.registry}: more than {MAX_REDIRECTS} redirects")

    def _request(self, method: str, url: str, **kwargs) -> requests.Response:
        """Send; on a 401, answer the challenge once and send again. 5xx and 429 raise _Retry;
        connection failures propagate as requests exceptions (also retried by callers)."""
        self.connect()
        response = self._send(method, url, **kwargs)
        if response.status_code == 401:
            self._authenticate(response)
            response = self._send(method, url, **kwargs)
            if response.status_code == 401:
                raise self._auth_failed()
        if response.status_code >= 500 or response.status_code == 429:
            raise _Retry(f"{method} answered {response.status_code}")
        if response.status_code == 403:
            raise AuthError(f"{self.ref.registry}: access to {self.ref.repository} denied "
                            f"({'push' if 'push' in self.actions and method != 'GET' else 'pull'} not allowed "
                            "for these credentials)")
        return response

    def _auth_failed(self) -> AuthError:
        if self.credential is None:
            return AuthError(f"{self.ref.registry}: authentication required; run `boxer login {self.ref.registry}`")
        where = f" (from {self.credential.source})" if self.credential.source else ""
        return AuthError(f"{self.ref.registry}: login failed for {self.credential.username!r}{where}: "
                         "wrong username or password")

    def _authenticate(self, response: requests.Response) -> None:
        challenge = response.headers.get("Www-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self.credential is None:
                raise self._auth_failed()
            pair = f"{self.credential.username}:{self.credential.password}".encode()
            self.authorization = "Basic " + base64.b64encode(pair).decode()
        elif scheme == "bearer":
            self.authorization = "Bearer " + self._token(dict(_PARAM.findall(challenge)))
        else:
            raise AuthError(f"{self.ref.registry}: unsupported authentication {challenge[:60]!r}")

    def _token(self, params: dict[str, str]) -> str:
        realm = params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise AuthError(f"{self.ref.registry}: the token challenge has no realm")
        query: dict[str, str | list[str]] = {
            "scope": [f"repository:{self.ref.repository}:{self.actions}",
                      *(f"repository:{source}:pull" for source in self.mount_from)]}
        if params.get("service"):
            query["service"] = params["service"]
        auth = None
        if self.credential is not None:
            if realm.startswith("http://") and not self.base.startswith("http://"):
                raise AuthError(f"{self.ref.registry}: refusing to send credentials to a plain-http token server")
            auth = (self.credential.username, self.credential.password)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = self.session.get(realm, params=query, auth=auth, timeout=(10, 60), stream=True)
            _read_body(r, MAX_BODY)
        except requests.RequestException as e:
            raise RegistryError(f"{self.ref.registry}: token server unreachable ({_reason(e)})") from None
        if r.status_code in (401, 403):
            raise self._auth_failed()
        try:
            doc = r.json()
            token = doc.get("token") or doc.get("access_token")
        except ValueError:
            token = None
        if r.status_code != 200 or not token:
            raise RegistryError(f"{self.ref.registry}: the token server answered {r.status_code} without a token")
        return str(token)

    # --- retries -----------------------------------------------------------------------

    def _retrying(self, what: str, action: Callable[[], object]):
        for attempt in range(self.options.retries + 1):
            try:
                return action()
            except (_Retry, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                if attempt == self.options.retries:
                    raise RegistryError(f"{self.ref.registry}: {what} failed after "
                                        f"{attempt + 1} attempts ({_reason(e)})") from None
                self._pause(attempt, what, e)

    def _pause(self, attempt: int, what: str, error: Exception) -> None:
        delay = min(self.options.backoff * (2 ** attempt), 8.0)
        self.options.progress(f"{what}: {_reason(error)}; retrying in {delay:.1f}s")
        time.sleep(delay)

    def _path(self, kind: str, target: str) -> str:
        return f"/v2/{self.ref.repository}/{kind}/{target}"

    # --- blobs -------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        def head() -> bool:
            r = self._request("HEAD", self._path("blobs", digest))
            if r.status_code not in (200, 404):
                raise _error(r, f"checking blob {digest[:19]}")
            return r.status_code == 200
        return bool(self._retrying(f"checking blob {digest[7:19]}", head))

    def mount_blob(self, digest: str, source: str) -> bool:
        """Cross-repository blob mount (`POST uploads/?mount=DIGEST&from=SOURCE`): the registry
        links a blob it holds in `source` into this repository and nothing is uploaded. False
        when it would not (it no longer has it there, or our token may not read `source`): it
        then opened an ordinary upload instead, which is cancelled."""
        def mount() -> bool:
            r = self._request("POST", self._path("blobs", "uploads/"), params={"mount": digest, "from": source},
                              headers={"Content-Length": "0"})
            if r.status_code == 201:
                return True
            if r.status_code == 202 and "Location" in r.headers:
                try:
                    self._send("DELETE", urljoin(self.base, r.headers["Location"]))
                except requests.RequestException:
                    pass   # an abandoned upload expires on the registry
                return False
            raise _error(r, f"mounting blob {digest[:19]} from {source}")
        return bool(self._retrying(f"mounting blob {digest[7:19]}", mount))

    def upload_blob(self, digest: str, data: bytes) -> None:
        """Chunked upload that survives 5xx answers and cut connections: after a failure it
        asks the upload how much arrived and goes on from there (or starts over)."""
        label = digest[7:19]
        location, offset = "", 0
        for attempt in range(self.options.retries + 1):
            try:
                if not location:
                    location, offset = self._start_upload(), 0
                self.options.blob(label, PUSHING, offset, len(data))
                while offset < len(data):
                    end = min(offset + self.options.chunk_size, len(data))
                    body = _Body(data[offset:end], functools.partial(self._pushing, label, offset, len(data)))
                    location = self._patch(location, body, offset)
                    self.bytes_sent += end - offset
                    offset = end
                self._finish(location, digest)
                self.options.blob(label, PUSHED, len(data), len(data))
                return
            except (_Retry, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                if attempt == self.options.retries:
                    raise RegistryError(f"{self.ref.registry}: upload of blob {digest[:19]} failed after "
                                        f"{attempt + 1} attempts ({_reason(e)})") from None
                self._pause(attempt, f"{label}: upload", e)
                location, offset = self._resume(location)
                if location:
                    self.options.progress(f"{label}: resuming at {_mb(offset)}")

    def _pushing(self, label: str, start: int, total: int, sent: int) -> None:
        self.options.blob(label, PUSHING, start + sent, total)

    def _start_upload(self) -> str:
        r = self._request("POST", self._path("blobs", "uploads/"), headers={"Content-Length": "0"})
        if r.status_code != 202 or "Location" not in r.headers:
            raise _error(r, "starting an upload")
        return urljoin(self.base, r.headers["Location"])

    def _patch(self, location: str, chunk: _Body, offset: int) -> str:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                   "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
        r = self._request("PATCH", location, data=chunk, headers=headers)
        if r.status_code == 416:
            raise _Retry("the registry holds a different part of the upload")
        if r.status_code != 202:
            raise _error(r, "uploading a chunk")
        return urljoin(self.base, r.headers.get("Location") or location)

    def _finish(self, location: str, digest: str) -> None:
        r = self._request("PUT", location, params={"digest": digest}, headers={"Content-Length": "0"})
        if r.status_code != 201:
            raise _error(r, f"finishing blob {digest[:19]}")

    def _resume(self, location: str) -> tuple[str, int]:
        """Where an interrupted upload stands: (location, bytes the registry holds), or ("", 0)
        to start the blob over when the upload is gone or cannot say."""
        if not location:
            return "", 0
        try:
            r = self._request("GET", location)
        except (_Retry, requests.RequestException):
            return "", 0
        match = re.fullmatch(r"(?:bytes=)?0-(\d+)", r.headers.get("Range", ""))
        if r.status_code != 204 or not match:
            return "", 0
        held = int(match.group(1))
        return urljoin(self.base, r.headers.get("Location") or location), held + 1 if held else 0

    def get_blob(self, desc: Descriptor) -> bytes:
        """The blob's bytes, at most its declared size plus one (the caller checks the digest);
        a declared size past MAX_BLOB is refused before anything is asked."""
        size = oci.blob_size(desc, str(self.ref))

        def get() -> bytes:
            r = self._request("GET", self._path("blobs", desc.digest), stream=True)
            try:
                if r.status_code != 200:
                    _read_body(r, MAX_BODY)
                    raise _error(r, f"fetching blob {desc.digest[:19]}")
                if _content_length(r) > size:
                    raise RegistryError(f"{self.ref}: blob {desc.digest[:19]} is longer than its descriptor says "
                                        f"({size} bytes); nothing was written")
                chunks, got = [], 0
                self.options.blob(desc.digest[7:19], DOWNLOADING, 0, size)
                for chunk in r.iter_content(256 << 10):
                    chunks.append(chunk)
                    got += len(chunk)
                    if got > size:
                        break
                    self.options.blob(desc.digest[7:19], DOWNLOADING, got, size)
                return b"".join(chunks)
            finally:
                r.close()
        data = self._retrying(f"fetching blob {desc.digest[7:19]}", get)
        self.bytes_received += len(data)
        self.options.blob(desc.digest[7:19], PULLED, len(data), size)
        return data

    # --- manifests ---------------------------------------------------------------------

    def get_manifest(self, target: str) -> tuple[bytes, str]:
        """(raw manifest, media type), checked against `target` when it is a digest, else
        against the digest the registry names."""
        def get() -> tuple[bytes, str, Mapping[str, str]]:
            r = self._request("GET", self._path("manifests", target), headers={"Accept": MANIFEST_ACCEPT},
                              limit=oci.MAX_MANIFEST)
            if r.status_code == 404:
                raise RegistryError(f"{self.ref}: not found (no such repository, tag or digest)")
            if r.status_code != 200:
                raise _error(r, "fetching the manifest")
            if getattr(r, "too_large", False):  # reading stopped at the cap
                raise RegistryError(f"{self.ref}: the manifest is implausibly large (over {oci.MAX_MANIFEST} bytes); "
                                    "nothing was written")
            return r.content, r.headers.get("Content-Type", "").split(";")[0].strip(), r.headers
        raw, media_type, headers = self._retrying("fetching the manifest", get)
        expected = target if target.startswith("sha256:") else headers.get("Docker-Content-Digest", "")
        if expected and sha256(raw) != expected:
            raise RegistryError(f"{self.ref}: the manifest fails its digest check (tampered in transit); "
                                "nothing was written")
        return raw, media_type

    def put_manifest(self, target: str, raw: bytes, media_type: str) -> str:
        def put() -> requests.Response:
            r = self._request("PUT", self._path("manifests", target), data=raw,
                              headers={"Content-Type": media_type})
            if r.status_code != 201:
                raise _error(r, "pushing the manifest")
            return r
        r = self._retrying("pushing the manifest", put)
        digest = sha256(raw)
        named = r.headers.get("Docker-Content-Digest")
        if named and named != digest:
            raise RegistryError(f"{self.ref}: the registry stored the manifest as {named}, expected {digest}")
        self.bytes_sent += len(raw)
        return digest


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _content_length(r: requests.Response) -> int:
    value = r.headers.get("Content-Length", "")
    return int(value) if value.isdigit() and len(value) < 30 else 0


def _read_body(r: requests.Response, limit: int) -> None:
    """Read the answer's body now, at most `limit` bytes (a Content-Length past it: none), and
    close the connection; `r.content` is what was read, `r.too_large` whether there was more."""
    chunks, got, too_large = [], 0, _content_length(r) > limit
    try:
        if not too_large:
            for chunk in r.iter_content(64 << 10):
                chunks.append(chunk)
                got += len(chunk)
                if got > limit:
                    too_large = True
                    break
    finally:
        r.close()
    r._content = b"".join(chunks)[:limit]  # what `content`, `text` and `json()` give from now on
    r._content_consumed = True
    r.too_large = too_large  # type: ignore[attr-defined]


def _error(r: requests.Response, what: str) -> RegistryError:
    """The registry's own error message (OCI `errors` body) when it sent one."""
    detail = ""
    try:
        errors = r.json().get("errors") or []
        if errors:
            detail = ": " + "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors[:3])
    except (ValueError, AttributeError):
        pass
    return RegistryError(f"{r.url.split('?')[0]}: {what} failed with HTTP {r.status_code}{detail}")


def _reason(error: Exception | None) -> str:
    if isinstance(error, _Retry):
        return str(error)
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        text = str(error)
        for key in ("Connection refused", "Connection reset", "RemoteDisconnected", "Broken pipe",
                    "Name or service not known", "Temporary failure in name resolution", "timed out",
                    "IncompleteRead", "Connection aborted"):
            if key in text:
                return key.lower()
        return "connection failed"
    return str(error) if error else "unknown error"
