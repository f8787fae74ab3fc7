"""ssl for a networked guest (CPython for WASI has no _ssl): TLS is done by the host, on
the host's socket behind the slot, verified against the host's CA store (and the run's
--allow-net-ca) with the name the guest connected to, which an --allow-net rule named. The
guest then reads and writes plaintext on the same descriptor. The guest cannot turn
verification off: CERT_NONE, check_hostname=False and custom CA files change nothing.
TLS servers (server_side=True) and client certificates are not available.
"""
import enum as _enum
import socket as _socket

import _boxer_net

OPENSSL_VERSION = "OpenSSL 3.0.0 (TLS done by the boxer host)"
OPENSSL_VERSION_INFO = (3, 0, 0, 0, 0)
OPENSSL_VERSION_NUMBER = 0x30000000
HAS_SNI = HAS_ALPN = HAS_ECDH = HAS_TLSv1_2 = HAS_TLSv1_3 = HAS_NEVER_CHECK_COMMON_NAME = True
HAS_NPN = HAS_SSLv2 = HAS_SSLv3 = HAS_TLSv1 = HAS_TLSv1_1 = False
CHANNEL_BINDING_TYPES = []
PROTOCOL_TLS, PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER, PROTOCOL_SSLv23 = 2, 16, 17, 2
OP_ALL, OP_NO_SSLv2, OP_NO_SSLv3, OP_NO_TLSv1, OP_NO_TLSv1_1 = 0x80000054, 0, 0x2000000, 0x4000000, 0x10000000
OP_NO_TLSv1_2, OP_NO_TLSv1_3, OP_NO_COMPRESSION, OP_NO_TICKET = 0x8000000, 0x20000000, 0x20000, 0x4000
OP_NO_RENEGOTIATION, OP_SINGLE_DH_USE, OP_SINGLE_ECDH_USE, OP_CIPHER_SERVER_PREFERENCE = 0x40000000, 0, 0, 0x400000
OP_ENABLE_MIDDLEBOX_COMPAT, OP_IGNORE_UNEXPECTED_EOF, OP_LEGACY_SERVER_CONNECT = 0x100000, 0x80, 0x4
VERIFY_DEFAULT, VERIFY_CRL_CHECK_LEAF, VERIFY_CRL_CHECK_CHAIN, VERIFY_X509_STRICT = 0, 4, 12, 0x20
VERIFY_X509_PARTIAL_CHAIN, VERIFY_X509_TRUSTED_FIRST, VERIFY_ALLOW_PROXY_CERTS = 0x80000, 0x8000, 0x40


class VerifyMode(_enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2


CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = VerifyMode.CERT_NONE, VerifyMode.CERT_OPTIONAL, VerifyMode.CERT_REQUIRED


class TLSVersion(_enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    MAXIMUM_SUPPORTED = -1
    SSLv3 = 768
    TLSv1 = 769
    TLSv1_1 = 770
    TLSv1_2 = 771
    TLSv1_3 = 772


class Purpose:
    SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
    CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"


class SSLError(OSError):
    pass


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
    pass


CertificateError = SSLCertVerificationError


class SSLContext:
    """Settings the guest may read and set; the host's own TLS ignores all but ALPN."""

    def __init__(self, protocol=PROTOCOL_TLS_CLIENT, *args, **kwargs):
        self.protocol = protocol
        self.verify_mode = CERT_REQUIRED
        self.check_hostname = True
        self.post_handshake_auth = None
        self.options = OP_ALL
        self.verify_flags = VERIFY_DEFAULT
        self.minimum_version = TLSVersion.MINIMUM_SUPPORTED
        self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
        self.keylog_filename = None
        self.hostname_checks_common_name = False
        self.sni_callback = None
        self._alpn = None

    def set_alpn_protocols(self, protocols):
        self._alpn = [str(p) for p in protocols]

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

    def get_ciphers(self):
        return []

    def cert_store_stats(self):
        return {"x509": 0, "crl": 0, "x509_ca": 0}

    def get_ca_certs(self, binary_form=False):
        return []

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        raise SSLError(58, "client certificates are not available in the sandbox")

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, suppress_ragged_eofs=True,
                    server_hostname=None, session=None):
        if server_side:
            raise SSLError(58, "TLS servers are not available in the sandbox (publish plain HTTP with -p)")
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


class SSLObject:
    pass


class MemoryBIO:
    def __init__(self, *args, **kwargs):
        raise SSLError(58, "memory BIOs are not available in the sandbox")


def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None, capath=None, cadata=None):
    return SSLContext(PROTOCOL_TLS_CLIENT)


_create_default_https_context = create_default_context
_create_unverified_context = create_default_context  # verification stays on: the host does it


def match_hostname(cert, hostname):
    pass  # the host checked the name


def get_default_verify_paths():
    return None


def DER_cert_to_PEM_cert(der):
    raise SSLError(58, "not available in the sandbox")


def PEM_cert_to_DER_cert(pem):
    raise SSLError(58, "not available in the sandbox")


def RAND_bytes(n):
    import os
    return os.urandom(n)


def RAND_status():
    return True
