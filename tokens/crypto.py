"""Token and client secrets: generation, format check and digests.

A token secret looks like ``tpk_<43 base62 chars><6 base62 chars>``: a fixed prefix that
secret scanners can recognise, 256 random bits, and a CRC32 checksum of the random part,
so that a typo or a truncated paste is rejected without touching the database. Only
the SHA-256 digest of a secret is ever stored; lookups are by digest.
"""

import hashlib
import hmac
import re
import secrets
import zlib

TOKEN_PREFIX = "tpk_"
CLIENT_SECRET_PREFIX = "tpcs_"
CLIENT_ID_PREFIX = "tpc_"

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 43  # 62**43 > 2**256
_CHECKSUM_LENGTH = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(TOKEN_PREFIX) + _BODY_LENGTH + _CHECKSUM_LENGTH
# ASCII letters and digits only (\w and str.isalnum() would take other scripts' too).
_TOKEN_RE = re.compile(
    re.escape(TOKEN_PREFIX) + f"[0-9A-Za-z]{{{_BODY_LENGTH + _CHECKSUM_LENGTH}}}"
)

# What the list and admin show of a token: enough to tell tokens apart, too little to use.
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
DISPLAY_SUFFIX_LENGTH = 4


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, remainder = divmod(number, 62)
        chars.append(_ALPHABET[remainder])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_LENGTH)


def _random_body() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))


def generate_token() -> str:
    body = _random_body()
    return f"{TOKEN_PREFIX}{body}{_checksum(body)}"


def looks_like_token(value: str) -> bool:
    """True when ``value`` has the token format and a valid checksum (no database hit)."""
    if _TOKEN_RE.fullmatch(value) is None:
        return False
    body = value[len(TOKEN_PREFIX) : -_CHECKSUM_LENGTH]
    return hmac.compare_digest(_checksum(body), value[-_CHECKSUM_LENGTH:])


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def display_parts(secret: str) -> tuple[str, str]:
    return secret[:DISPLAY_PREFIX_LENGTH], secret[-DISPLAY_SUFFIX_LENGTH:]


def generate_client_id() -> str:
    return CLIENT_ID_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def generate_client_secret() -> str:
    return CLIENT_SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))


def digests_match(secret: str, expected_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), expected_digest)
