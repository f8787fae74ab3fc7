"""boxer: CPython for WASI has no OpenSSL and a WebAssembly guest has no network. This stand-in
for the `_ssl` extension lets `import ssl` succeed (libraries import it at start-up) and makes
every TLS operation fail with one clear error."""

_WHY = "TLS is not available: this WebAssembly sandbox has no network (and no OpenSSL)"


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


class _SSLContext:
    def __new__(cls, *args, **kwargs):
        raise SSLError(_WHY)


class MemoryBIO:
    def __new__(cls, *args, **kwargs):
        raise SSLError(_WHY)


class SSLSession:
    def __new__(cls, *args, **kwargs):
        raise SSLError(_WHY)


OPENSSL_VERSION_NUMBER = 0
OPENSSL_VERSION_INFO = (0, 0, 0, 0, 0)
OPENSSL_VERSION = "none (WebAssembly sandbox without network)"
_OPENSSL_API_VERSION = (0, 0, 0, 0, 0)
_DEFAULT_CIPHERS = "DEFAULT"

_OIDS = {"1.3.6.1.5.5.7.3.1": (129, "serverAuth", "TLS Web Server Authentication"),
         "1.3.6.1.5.5.7.3.2": (130, "clientAuth", "TLS Web Client Authentication")}


def txt2obj(txt, name=False):
    for oid, (nid, short, long) in _OIDS.items():
        if txt in (oid, short, long):
            return nid, short, long, oid
    raise ValueError(f"unknown object '{txt}'")


def nid2obj(nid):
    for oid, (n, short, long) in _OIDS.items():
        if n == nid:
            return n, short, long, oid
    raise ValueError(f"unknown NID {nid}")


def RAND_status():
    return False


def RAND_add(string, entropy):
    raise SSLError(_WHY)


def RAND_bytes(n):
    raise SSLError(_WHY)


RAND_pseudo_bytes = RAND_bytes


def get_default_verify_paths():
    return ("SSL_CERT_FILE", "/etc/ssl/cert.pem", "SSL_CERT_DIR", "/etc/ssl/certs")


HAS_SNI = HAS_ECDH = HAS_NPN = HAS_ALPN = HAS_NEVER_CHECK_COMMON_NAME = HAS_PSK = HAS_PHA = False
HAS_SSLv2 = HAS_SSLv3 = HAS_TLSv1 = HAS_TLSv1_1 = HAS_TLSv1_2 = HAS_TLSv1_3 = False
HAS_TLS_UNIQUE = False

PROTOCOL_TLS = PROTOCOL_SSLv23 = 2
PROTOCOL_TLS_CLIENT = 16
PROTOCOL_TLS_SERVER = 17
PROTO_MINIMUM_SUPPORTED = -2
PROTO_SSLv3 = 0x300
PROTO_TLSv1 = 0x301
PROTO_TLSv1_1 = 0x302
PROTO_TLSv1_2 = 0x303
PROTO_TLSv1_3 = 0x304
PROTO_MAXIMUM_SUPPORTED = -1

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

CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = 0, 1, 2
VERIFY_DEFAULT = 0
VERIFY_CRL_CHECK_LEAF = 0x4
VERIFY_CRL_CHECK_CHAIN = 0xC
VERIFY_X509_STRICT = 0x20
VERIFY_X509_TRUSTED_FIRST = 0x8000
VERIFY_X509_PARTIAL_CHAIN = 0x80000
VERIFY_ALLOW_PROXY_CERTS = 0x40
HOSTFLAG_NEVER_CHECK_SUBJECT = 0x20
ENCODING_PEM, ENCODING_DER = 1, 2

SSL_ERROR_ZERO_RETURN = 6
SSL_ERROR_WANT_READ = 2
SSL_ERROR_WANT_WRITE = 3
SSL_ERROR_WANT_X509_LOOKUP = 4
SSL_ERROR_SYSCALL = 5
SSL_ERROR_SSL = 1
SSL_ERROR_WANT_CONNECT = 7
SSL_ERROR_EOF = 8
SSL_ERROR_INVALID_ERROR_CODE = 10

for _i, _name in enumerate(("CLOSE_NOTIFY", "UNEXPECTED_MESSAGE", "BAD_RECORD_MAC", "RECORD_OVERFLOW",
                            "DECOMPRESSION_FAILURE", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE",
                            "UNSUPPORTED_CERTIFICATE", "CERTIFICATE_REVOKED", "CERTIFICATE_EXPIRED",
                            "CERTIFICATE_UNKNOWN", "ILLEGAL_PARAMETER", "UNKNOWN_CA", "ACCESS_DENIED",
                            "DECODE_ERROR", "DECRYPT_ERROR", "PROTOCOL_VERSION", "INSUFFICIENT_SECURITY",
                            "INTERNAL_ERROR", "USER_CANCELLED", "NO_RENEGOTIATION", "UNSUPPORTED_EXTENSION",
                            "CERTIFICATE_UNOBTAINABLE", "UNRECOGNIZED_NAME", "BAD_CERTIFICATE_STATUS_RESPONSE",
                            "BAD_CERTIFICATE_HASH_VALUE", "UNKNOWN_PSK_IDENTITY")):
    globals()["ALERT_DESCRIPTION_" + _name] = (0, 10, 20, 22, 30, 40, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
                                                70, 71, 80, 90, 100, 110, 111, 112, 113, 114, 115)[_i]
del _i, _name
