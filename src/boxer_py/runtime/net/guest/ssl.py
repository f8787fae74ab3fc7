"""ssl for a WebAssembly guest, the one module every python base and every networked run uses
(CPython for WASI has no OpenSSL, and the VMware 3.12 runtime's stdlib has no ssl at all).

It imports, and contexts can be made and configured, because libraries do both at start-up
(aiohttp, httpx, urllib3, kombu, neo4j). A TLS connection needs a network: in a run with
--allow-net (this file then comes from boxer's network modules, first on PYTHONPATH), the
host does TLS on the host's socket behind the guest's slot, verified against the host's CA
store (and the run's --allow-net-ca) with the name the guest connected to, which an
--allow-net rule named; the guest then reads and writes plaintext on the same descriptor. It
cannot turn verification off: CERT_NONE, check_hostname=False and custom CA files change
nothing. Without a network (the python bases' copy, served as `ssl` by their sitecustomize)
wrapping a socket fails with one SSLError saying so. TLS servers (server_side=True), client
certificates and memory BIOs are not available.
"""
import enum as _enum
import os as _os
import socket as _socket
from collections import namedtuple as _namedtuple
from socket import SOCK_STREAM, create_connection, socket  # noqa: F401  (as the stdlib's ssl has them)

try:
    import _boxer_net
except ImportError:  # a run without boxer's network modules
    _boxer_net = None

_NO_NETWORK = ("TLS is not available: this sandbox has no network "
               "(--allow-net HOST gives it one, and the host then does TLS for it)")

OPENSSL_VERSION = "OpenSSL 3.0.0 (TLS done by the boxer host)"
OPENSSL_VERSION_INFO = (3, 0, 0, 0, 0)
OPENSSL_VERSION_NUMBER = 0x30000000
_OPENSSL_API_VERSION = (3, 0, 0, 0, 0)
_DEFAULT_CIPHERS = "DEFAULT"
HAS_SNI = HAS_ALPN = HAS_ECDH = HAS_TLSv1_2 = HAS_TLSv1_3 = HAS_NEVER_CHECK_COMMON_NAME = True
HAS_NPN = HAS_SSLv2 = HAS_SSLv3 = HAS_TLSv1 = HAS_TLSv1_1 = HAS_PSK = HAS_PHA = HAS_TLS_UNIQUE = False
CHANNEL_BINDING_TYPES = []
socket_error = OSError


class _SSLMethod(_enum.IntEnum):
    PROTOCOL_SSLv23 = 2
    PROTOCOL_TLS_CLIENT = 16
    PROTOCOL_TLS_SERVER = 17


_SSLMethod.PROTOCOL_TLS = _SSLMethod.PROTOCOL_SSLv23
PROTOCOL_TLS = PROTOCOL_SSLv23 = _SSLMethod.PROTOCOL_SSLv23
PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER = _SSLMethod.PROTOCOL_TLS_CLIENT, _SSLMethod.PROTOCOL_TLS_SERVER


class Options(_enum.IntFlag):
    OP_ALL = 0x80000054
    OP_NO_SSLv2 = 0
    OP_NO_SSLv3 = 0x2000000
    OP_NO_TLSv1 = 0x4000000
    OP_NO_TLSv1_1 = 0x10000000
    OP_NO_TLSv1_2 = 0x8000000
    OP_NO_TLSv1_3 = 0x20000000
    OP_CIPHER_SERVER_PREFERENCE = 0x400000
    OP_SINGLE_DH_USE = 0
    OP_SINGLE_ECDH_USE = 0
    OP_NO_COMPRESSION = 0x20000
    OP_NO_TICKET = 0x4000
    OP_NO_RENEGOTIATION = 0x40000000
    OP_ENABLE_MIDDLEBOX_COMPAT = 0x100000
    OP_IGNORE_UNEXPECTED_EOF = 0x80
    OP_LEGACY_SERVER_CONNECT = 0x4
    OP_ENABLE_KTLS = 0x8


class VerifyMode(_enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2


class VerifyFlags(_enum.IntFlag):
    VERIFY_DEFAULT = 0
    VERIFY_CRL_CHECK_LEAF = 0x4
    VERIFY_CRL_CHECK_CHAIN = 0xC
    VERIFY_X509_STRICT = 0x20
    VERIFY_X509_TRUSTED_FIRST = 0x8000
    VERIFY_X509_PARTIAL_CHAIN = 0x80000
    VERIFY_ALLOW_PROXY_CERTS = 0x40


class TLSVersion(_enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    MAXIMUM_SUPPORTED = -1
    SSLv3 = 768
    TLSv1 = 769
    TLSv1_1 = 770
    TLSv1_2 = 771
    TLSv1_3 = 772


class SSLErrorNumber(_enum.IntEnum):
    SSL_ERROR_SSL = 1
    SSL_ERROR_WANT_READ = 2
    SSL_ERROR_WANT_WRITE = 3
    SSL_ERROR_WANT_X509_LOOKUP = 4
    SSL_ERROR_SYSCALL = 5
    SSL_ERROR_ZERO_RETURN = 6
    SSL_ERROR_WANT_CONNECT = 7
    SSL_ERROR_EOF = 8
    SSL_ERROR_INVALID_ERROR_CODE = 10


class AlertDescription(_enum.IntEnum):
    ALERT_DESCRIPTION_CLOSE_NOTIFY = 0
    ALERT_DESCRIPTION_UNEXPECTED_MESSAGE = 10
    ALERT_DESCRIPTION_BAD_RECORD_MAC = 20
    ALERT_DESCRIPTION_RECORD_OVERFLOW = 22
    ALERT_DESCRIPTION_DECOMPRESSION_FAILURE = 30
    ALERT_DESCRIPTION_HANDSHAKE_FAILURE = 40
    ALERT_DESCRIPTION_BAD_CERTIFICATE = 42
    ALERT_DESCRIPTION_UNSUPPORTED_CERTIFICATE = 43
    ALERT_DESCRIPTION_CERTIFICATE_REVOKED = 44
    ALERT_DESCRIPTION_CERTIFICATE_EXPIRED = 45
    ALERT_DESCRIPTION_CERTIFICATE_UNKNOWN = 46
    ALERT_DESCRIPTION_ILLEGAL_PARAMETER = 47
    ALERT_DESCRIPTION_UNKNOWN_CA = 48
    ALERT_DESCRIPTION_ACCESS_DENIED = 49
    ALERT_DESCRIPTION_DECODE_ERROR = 50
    ALERT_DESCRIPTION_DECRYPT_ERROR = 51
    ALERT_DESCRIPTION_PROTOCOL_VERSION = 70
    ALERT_DESCRIPTION_INSUFFICIENT_SECURITY = 71
    ALERT_DESCRIPTION_INTERNAL_ERROR = 80
    ALERT_DESCRIPTION_USER_CANCELLED = 90
    ALERT_DESCRIPTION_NO_RENEGOTIATION = 100
    ALERT_DESCRIPTION_UNSUPPORTED_EXTENSION = 110
    ALERT_DESCRIPTION_CERTIFICATE_UNOBTAINABLE = 111
    ALERT_DESCRIPTION_UNRECOGNIZED_NAME = 112
    ALERT_DESCRIPTION_BAD_CERTIFICATE_STATUS_RESPONSE = 113
    ALERT_DESCRIPTION_BAD_CERTIFICATE_HASH_VALUE = 114
    ALERT_DESCRIPTION_UNKNOWN_PSK_IDENTITY = 115


# the enums' members as module constants, as the stdlib's ssl has them
globals().update({**Options.__members__, **VerifyMode.__members__, **VerifyFlags.__members__,
                  **SSLErrorNumber.__members__, **AlertDescription.__members__})
PROTO_MINIMUM_SUPPORTED, PROTO_MAXIMUM_SUPPORTED = -2, -1
PROTO_SSLv3, PROTO_TLSv1, PROTO_TLSv1_1, PROTO_TLSv1_2, PROTO_TLSv1_3 = 0x300, 0x301, 0x302, 0x303, 0x304
HOSTFLAG_NEVER_CHECK_SUBJECT = 0x20
ENCODING_PEM, ENCODING_DER = 1, 2
PEM_HEADER, PEM_FOOTER = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"

_ASN1 = _namedtuple("_ASN1Object", "nid shortname longname oid")


class Purpose(_ASN1, _enum.Enum):
    SERVER_AUTH = (129, "serverAuth", "TLS Web Server Authentication", "1.3.6.1.5.5.7.3.1")
    CLIENT_AUTH = (130, "clientAuth", "TLS Web Client Authentication", "1.3.6.1.5.5.7.3.2")


DefaultVerifyPaths = _namedtuple("DefaultVerifyPaths", "cafile capath openssl_cafile_env openssl_cafile "
                                                       "openssl_capath_env openssl_capath")


class SSLError(OSError):
    library = reason = None


class SSLZeroReturnError(SSLError):
    pass


class SSLWantReadError(SSLError):
    pass


class SSLWantWriteError(SSLError):
    pass


class SSLSyscallError(SSLError):
    pass


class SSLEOFError(SSLError):
    pass


class SSLCertVerificationError(SSLError, ValueError):
    verify_code = verify_message = None


CertificateError = SSLCertVerificationError


class SSLContext:
    """Settings the guest may read and set; the host's own TLS ignores all but ALPN."""

    def __init__(self, protocol=PROTOCOL_TLS_CLIENT, *args, **kwargs):
        self.protocol = protocol
        self.verify_mode = CERT_REQUIRED  # the host always verifies
        self.check_hostname = True
        self.post_handshake_auth = None
        self.options = Options.OP_ALL
        self.verify_flags = VerifyFlags.VERIFY_DEFAULT
        self.minimum_version = TLSVersion.MINIMUM_SUPPORTED
        self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
        self.keylog_filename = None
        self.hostname_checks_common_name = False
        self.sni_callback = None
        self.security_level = 2
        self.num_tickets = 2
        self._alpn = None

    def set_alpn_protocols(self, protocols):
        self._alpn = [str(p) for p in protocols]

    def set_npn_protocols(self, protocols):
        pass

    def set_servername_callback(self, callback):
        self.sni_callback = callback

    def load_verify_locations(self, cafile=None, capath=None, cadata=None):
        pass  # the host's CA store (and --allow-net-ca) decide

    def load_default_certs(self, purpose=Purpose.SERVER_AUTH):
        pass

    def set_default_verify_paths(self):
        pass

    def set_ciphers(self, ciphers):
        pass

    def set_ecdh_curve(self, name):
        pass

    def load_dh_params(self, path):
        pass

    def get_ciphers(self):
        return []

    def cert_store_stats(self):
        return {"x509": 0, "crl": 0, "x509_ca": 0}

    def session_stats(self):
        return {}

    def get_ca_certs(self, binary_form=False):
        return []

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        raise SSLError(58, "client certificates are not available in the sandbox")

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, suppress_ragged_eofs=True,
                    server_hostname=None, session=None):
        if server_side:
            raise SSLError(58, "TLS servers are not available in the sandbox (publish plain HTTP with -p)")
        if _boxer_net is None or _boxer_net.FD < 0:
            raise SSLError(58, _NO_NETWORK)
        try:
            answer = _boxer_net.control({"op": "tls", "fd": sock.fileno(), "alpn": self._alpn})
        except OSError as e:
            raise SSLError(e.errno, e.strerror) from None
        timeout = sock.gettimeout()
        fd = sock.detach()
        wrapped = SSLSocket(sock.family, sock.type, sock.proto, fileno=fd)
        wrapped.settimeout(timeout)  # the descriptor's blocking mode, as the socket it wraps had it
        wrapped._boxer_alpn = answer.get("alpn")
        wrapped.server_hostname = server_hostname
        wrapped.context = self
        return wrapped

    def wrap_bio(self, *args, **kwargs):
        raise SSLError(58, "memory BIOs are not available in the sandbox")


class SSLSocket(_socket.socket):
    """A connected socket whose TLS the host does: plaintext in and out."""

    __slots__ = ("_boxer_alpn", "server_hostname", "context")

    def selected_alpn_protocol(self):
        return self._boxer_alpn

    def selected_npn_protocol(self):
        return None

    def getpeercert(self, binary_form=False):
        return b"" if binary_form else {"subject": ((("commonName", self.server_hostname or ""),),)}

    def version(self):
        return "TLSv1.3"

    def cipher(self):
        return ("host", "TLSv1.3", 256)

    def shared_ciphers(self):
        return None

    def compression(self):
        return None

    def pending(self):
        return 0

    def do_handshake(self):
        pass

    def unwrap(self):
        return self

    def get_channel_binding(self, cb_type="tls-unique"):
        return None


SSLContext.sslsocket_class = SSLSocket


class SSLObject:
    def __init__(self, *args, **kwargs):
        raise SSLError(58, "memory BIOs are not available in the sandbox")


class MemoryBIO:
    def __init__(self, *args, **kwargs):
        raise SSLError(58, "memory BIOs are not available in the sandbox")


class SSLSession:
    def __init__(self, *args, **kwargs):
        raise SSLError(58, "TLS sessions are not available in the sandbox")


SSLContext.sslobject_class = SSLObject


def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None, capath=None, cadata=None):
    return SSLContext(PROTOCOL_TLS_CLIENT if purpose == Purpose.SERVER_AUTH else PROTOCOL_TLS_SERVER)


def _create_unverified_context(protocol=None, *, cert_reqs=CERT_NONE, check_hostname=False,
                               purpose=Purpose.SERVER_AUTH, **kwargs):
    return create_default_context(purpose)  # verification stays on: the host does it


_create_default_https_context = create_default_context
_create_stdlib_context = _create_unverified_context


def wrap_socket(sock, keyfile=None, certfile=None, server_side=False, cert_reqs=CERT_NONE,
                ssl_version=PROTOCOL_TLS, ca_certs=None, do_handshake_on_connect=True,
                suppress_ragged_eofs=True, ciphers=None):
    return SSLContext(ssl_version).wrap_socket(sock, server_side=server_side)


def match_hostname(cert, hostname):
    pass  # the host checked the name


def get_default_verify_paths():
    return DefaultVerifyPaths(None, None, "SSL_CERT_FILE", "/etc/ssl/cert.pem", "SSL_CERT_DIR", "/etc/ssl/certs")


def get_server_certificate(addr, ssl_version=PROTOCOL_TLS_CLIENT, ca_certs=None, timeout=None):
    raise SSLError(58, "a server's certificate is not available in the sandbox (the host verifies it)")


def cert_time_to_seconds(cert_time):
    import calendar
    import time
    return calendar.timegm(time.strptime(cert_time[:-4] if cert_time.endswith(" GMT") else cert_time,
                                         "%b %d %H:%M:%S %Y"))


def DER_cert_to_PEM_cert(der_cert_bytes):
    import base64
    text = base64.standard_b64encode(der_cert_bytes).decode("ascii")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return PEM_HEADER + "\n" + "\n".join(lines) + "\n" + PEM_FOOTER + "\n"


def PEM_cert_to_DER_cert(pem_cert_string):
    import base64
    if not pem_cert_string.startswith(PEM_HEADER) or not pem_cert_string.strip().endswith(PEM_FOOTER):
        raise ValueError(f"not a PEM certificate: it must start with {PEM_HEADER} and end with {PEM_FOOTER}")
    d = pem_cert_string.strip()[len(PEM_HEADER):-len(PEM_FOOTER)]
    return base64.decodebytes(d.encode("ASCII", "strict"))


def RAND_bytes(n):
    return _os.urandom(n)


def RAND_status():
    return True


def RAND_add(string, entropy):
    pass
