"""``POST /secret-scanning/github/``: GitHub's secret scanning partner program.

GitHub posts a JSON array of ``{"token", "type", "url", "source"}`` found public, signed
with ECDSA P-256 / SHA-256 over the raw body: the headers ``Github-Public-Key-Identifier``
(which of GitHub's keys) and ``Github-Public-Key-Signature`` (base64 of the DER
signature). The trusted keys come from the file named by ``TOKEN_PORTAL_SECRET_SCANNING_KEYS``
in the shape GitHub publishes them (``{"public_keys": [{"key_identifier", "key",
"is_current"}]}``); without the setting there is no endpoint (404). A verified report is
acted on by ``services.report_leaked``; the answer labels each entry (docs/secret-scanning.md).

No session, no CSRF token, no rate limit: the signature is the only authentication, it
is checked before anything else is read, and GitHub must never be stopped. No reported
string is ever logged or echoed: only its hash's prefix and the URL.
"""

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.db import DatabaseError
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from portal.logs import security_log
from tokens import services
from tokens.conf import setting
from tokens.gateway.cache import CachePurgeFailed

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_ENTRIES = 1000
KEY_ID_HEADER = "Github-Public-Key-Identifier"
SIGNATURE_HEADER = "Github-Public-Key-Signature"
_SIGNATURE = ec.ECDSA(hashes.SHA256())
_MAX_KEY_FILE_BYTES = 1024 * 1024


class KeyFileError(Exception):
    """The key file named by the setting cannot be read or holds no usable key."""


@dataclass(frozen=True)
class _KeyFile:
    path: str
    stamp: tuple  # (mtime_ns, size, inode): a change of any of them means a new file
    keys: dict  # {key_identifier: EllipticCurvePublicKey}


_loaded: _KeyFile | None = None
_loading = threading.Lock()


def trusted_keys(path: str) -> dict:
    """GitHub's keys from ``path``, read once and again whenever the file changes.

    Raises ``KeyFileError`` for a missing, unreadable or malformed file. A key that is
    not an EC P-256 public key is skipped (logged): a key GitHub adds of another kind
    must not stop the reports signed with the others.
    """
    global _loaded
    try:
        status = os.stat(path)
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror or error}") from None
    stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
    current = _loaded
    if current is not None and current.path == path and current.stamp == stamp:
        return current.keys
    with _loading:
        current = _loaded
        if current is not None and current.path == path and current.stamp == stamp:
            return current.keys
        keys = _parse_key_file(path)
        _loaded = _KeyFile(path=path, stamp=stamp, keys=keys)
        logger.info("Secret scanning: %d key(s) loaded from %s", len(keys), path)
        return keys


def _parse_key_file(path: str) -> dict:
    try:
        with open(path, "rb") as file:
            raw = file.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror or error}") from None
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is larger than {_MAX_KEY_FILE_BYTES} bytes")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise KeyFileError(f"{path} is not JSON") from None
    entries = document.get("public_keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyFileError(f'{path} has no "public_keys" list')
    keys = {}
    for index, entry in enumerate(entries):
        key_id = entry.get("key_identifier") if isinstance(entry, dict) else None
        pem = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key_id, str) or not key_id or not isinstance(pem, str):
            logger.error("Secret scanning: key %d in %s lacks key_identifier or key", index, path)
            continue
        try:
            key = load_pem_public_key(pem.encode("utf-8"))
        except (ValueError, TypeError, UnicodeEncodeError):
            logger.error("Secret scanning: key %s in %s is not a PEM public key", key_id, path)
            continue
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            logger.error("Secret scanning: key %s in %s is not an EC P-256 key", key_id, path)
            continue
        keys[key_id] = key
    if not keys:
        raise KeyFileError(f"{path} holds no usable EC P-256 public key")
    return keys


def signature_is_valid(body: bytes, key_id: str, signature: str, keys: dict) -> bool:
    """Whether ``signature`` (base64 of a DER ECDSA signature) is the key ``key_id``'s
    over ``body``."""
    key = keys.get(key_id)
    if key is None or not signature:
        return False
    try:
        der = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(der, body, _SIGNATURE)
    except (InvalidSignature, ValueError):
        return False
    return True


class BadReport(ValueError):
    """A verified body that is not a report: the message says what is wrong (400)."""


class TooLarge(ValueError):
    """A verified report of more than ``MAX_ENTRIES`` entries (413)."""


def parse_report(body: bytes) -> list[services.ReportedSecret]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadReport("The body is not JSON.") from None
    if not isinstance(document, list):
        raise BadReport("The body must be a JSON array of reported tokens.")
    if len(document) > MAX_ENTRIES:
        raise TooLarge(f"At most {MAX_ENTRIES} tokens per report.")
    entries = []
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise BadReport(f"Entry {index} is not an object.")
        fields = {}
        for name in ("token", "type", "url", "source"):
            value = item.get(name)
            required = name in ("token", "type")
            if value is None and not required:
                value = ""
            if not isinstance(value, str) or (required and not value):
                kind = "a non-empty string" if required else "a string"
                raise BadReport(f'Entry {index}: "{name}" must be {kind}.')
            fields[name] = value
        entries.append(services.ReportedSecret(**fields))
    return entries


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _declared_too_large(request) -> bool:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES
    except ValueError:
        return False  # Django reads nothing of a body whose length it cannot tell


def _read_body(request) -> bytes | None:
    """The body, or None when it is over ``MAX_BODY_BYTES``: never more read than that."""
    body = request.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


@csrf_exempt
def github(request):
    """GitHub's secret scanning partner program: a signed report in, labels out."""
    path = setting("SECRET_SCANNING_KEYS")
    if not path:
        raise Http404("Secret scanning is not configured.")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if _declared_too_large(request):
        return _error(413, f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        keys = trusted_keys(path)
    except KeyFileError as error:
        logger.error("Secret scanning: the key file is unusable: %s", error)
        response = _error(503, "Secret scanning is not available; try again later.")
        response["Retry-After"] = "60"
        return response
    body = _read_body(request)
    if body is None:
        return _error(413, f"The body is over {MAX_BODY_BYTES} bytes.")
    key_id = request.headers.get(KEY_ID_HEADER, "")
    if not signature_is_valid(body, key_id, request.headers.get(SIGNATURE_HEADER, ""), keys):
        security_log(
            "authn_secret_scanning_fail",
            actor="secret scanning",
            level=logging.WARNING,
            key_identifier=key_id[:100] or None,
            reason="unknown key" if key_id and key_id not in keys else "bad or missing signature",
        )
        return _error(401, "The report's signature is missing or not valid.")
    try:
        entries = parse_report(body)
    except TooLarge as error:
        return _error(413, str(error))
    except BadReport as error:
        return _error(400, str(error))
    try:
        outcome = services.report_leaked(
            entries, key_identifier=key_id, body_digest=hashlib.sha256(body).hexdigest()
        )
    except CachePurgeFailed as error:
        # Acted on and committed, but a gateway may still accept a token from its cache:
        # a retry of the same report (a replay) purges again.
        logger.error("Secret scanning: %s", error.message)
        response = _error(503, "The report was recorded; the gateways' cache could not be purged.")
        response["Retry-After"] = "5"
        return response
    except DatabaseError:
        logger.exception("Secret scanning: the database is unavailable")
        response = _error(503, "Try again shortly.")
        response["Retry-After"] = "5"
        return response
    security_log(
        "secret_scanning_report",
        actor="secret scanning",
        key_identifier=key_id[:100],
        entries=len(entries),
        true_positives=outcome.true_positives,
        revoked=outcome.revoked,
        replayed=outcome.replayed,
    )
    return JsonResponse(outcome.labels, safe=False)
