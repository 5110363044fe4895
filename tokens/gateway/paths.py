"""Which path a gateway check is about: the original URI's header, and the path as the
gateway routes it (or None when servers could read it differently: refused with 403).

The path is resolved as nginx resolves a request's URI before it picks a location
(``ngx_http_parse_complex_uri``): percent-encoding decoded, repeated slashes merged,
``.`` and ``..`` segments resolved, ``..`` above the root refused. Whatever nginx,
Envoy, Traefik and the servlet containers behind them do not all read the same way is
refused instead of guessed: one reading could let a request through to an API that
another reading sends it to.
"""

import functools
import logging
import re
import time
import unicodedata
from urllib.parse import unquote

from django.core.signals import setting_changed
from django.dispatch import receiver

from portal.logs import security_log
from tokens.conf import setting

# The request-target's absolute form, as nginx's request line parser takes it: a scheme,
# "://", a host name or an IP literal, an optional port; the path follows.
_ABSOLUTE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*://"
    r"(?:[A-Za-z0-9.\-]*|\[[A-Za-z0-9:._~!$&'()*+,;=\-]*\])"
    r"(?::[0-9]*)?"
)
# A "%" that does not start an escape: nginx answers such a request with 400.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Raw in a URI: a space or a control character (nginx refuses the request line), a
# backslash (a separator on Windows and for some upstreams), ";" (servlet containers cut
# a segment's parameters at it, nginx and Envoy do not).
_REFUSED_RAW = re.compile(r"[\x00-\x20\x7f\\;]")
# Left after decoding: an encoded slash, backslash or ";", a "%" (double encoding: an
# upstream that decodes again reads something else), a control character.
_REFUSED_DECODED = re.compile(r"[/\\;%\x00-\x1f\x7f]")
_DOTS = (".", "..")

# Returned by ``original_uri`` when the URI headers disagree; ``normalise_path`` refuses it.
CONFLICT = "conflicting URI headers"
_URI_HEADERS = {"x-original-uri": "HTTP_X_ORIGINAL_URI", "x-forwarded-uri": "HTTP_X_FORWARDED_URI"}


def original_uri(meta) -> str | None:
    """The URI the gateway is asking about (``meta``: a WSGI environ or ``request.META``).

    With ``TOKEN_PORTAL["TRUSTED_URI_HEADER"]`` set, only that header is read: the
    gateway sets it on every check, and a client may add the other one (Traefik passes
    the client's headers on). Empty, either nginx's ``X-Original-URI`` or Traefik's
    ``X-Forwarded-Uri``; when both are present and differ, ``CONFLICT`` (a 403), since
    which one is checked must not be the client's choice.
    """
    trusted = _trusted_key()
    if trusted is None:  # (settings.py refuses to start with it)
        return CONFLICT
    if trusted:
        return meta.get(trusted)
    original = meta.get("HTTP_X_ORIGINAL_URI")
    forwarded = meta.get("HTTP_X_FORWARDED_URI")
    if original is not None and forwarded is not None and original != forwarded:
        return CONFLICT
    return original or forwarded


@functools.cache  # read on every check; the settings object costs more than the check's path
def _trusted_key() -> str | None:
    """The environ key of the trusted URI header; "" when either is read; None if unknown."""
    trusted = setting("TRUSTED_URI_HEADER")
    return _URI_HEADERS.get(trusted.lower()) if trusted else ""


@receiver(setting_changed)
def _forget_trusted_key(*, setting, **kwargs):
    if setting == "TOKEN_PORTAL":
        _trusted_key.cache_clear()


def normalise_path(uri: str | None) -> str | None:
    """The path of ``uri`` as nginx routes it, without a trailing slash; None if refused.

    Query and fragment are dropped, percent-encoding decoded, repeated slashes merged,
    ``.`` and ``..`` segments resolved, so that ``/allowed/../secret`` and
    ``/allowed//../secret`` are ``/secret``. Refused (None), because servers read them
    differently or not at all: ``..`` above the root; ``;`` anywhere in the path
    (``/admin/..;/pay`` is under ``/admin`` for nginx, ``/pay`` for Tomcat); encoded
    dots in a dot segment (``%2e%2e``); encoded slashes and backslashes, backslashes,
    double encoding (``%252e``); NUL, control characters, spaces; a ``%`` without two
    hex digits; bytes that are not UTF-8 (overlong ``%c0%ae`` too); letters that
    Unicode compatibility folds into a dot, slash or backslash; a malformed absolute URI.
    """
    if not uri:
        return None
    if uri is CONFLICT:
        _log_refusal("conflicting URI headers")
        return None
    path = None
    if not uri.startswith("/"):
        # The absolute form: nginx takes "http://host" and "http://host?q" as "/".
        absolute = _ABSOLUTE.match(uri)
        if absolute is not None:
            uri = uri[absolute.end() :]
            uri = "/" if uri[:1] in ("", "?") else uri
    if uri.startswith("/"):
        # Only the path is kept (and memoised): a query string may hold anything, secrets too.
        path = _normalise(uri.split("#", 1)[0].split("?", 1)[0])
    if path is None:
        _log_refusal("ambiguous path")
    return path


@functools.lru_cache(maxsize=4096)  # gateways ask about the same few paths again and again
def _normalise(path: str) -> str | None:
    if _REFUSED_RAW.search(path):
        return None
    segments: list[str] = []
    for raw in path.split("/"):
        segment = raw
        if "%" in raw:
            if _BAD_ESCAPE.search(raw):
                return None
            try:
                segment = unquote(raw, errors="strict")
            except UnicodeDecodeError:
                return None
            if _REFUSED_DECODED.search(segment) or segment in _DOTS:
                return None  # (encoded dots: not every server decodes before resolving)
        if not segment.isascii() and _folds_to_syntax(segment):
            return None
        if not segment or segment == ".":
            continue
        if segment == "..":
            if not segments:
                return None  # nginx: 400
            segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def _folds_to_syntax(segment: str) -> bool:
    """Whether compatibility folding (NFKC) makes a dot segment of ``segment``, or puts
    a slash, backslash, ``;`` or ``%`` in it (fullwidth ``．．``, ``／``): a server that
    folds would route the request elsewhere."""
    folded = unicodedata.normalize("NFKC", segment)
    return folded in _DOTS or any(c in folded for c in "/\\;%")


_refusals_logged: dict[str, float] = {}


def _log_refusal(reason: str) -> None:
    """``authz_fail`` for a URI refused unread, at most once a minute per reason and process.

    A gateway asks on every API request: a client (or a misconfigured gateway) sending
    such URIs would otherwise write a log line per request, and a flood hides the events
    that matter. The refused URI itself is not logged (its query may hold a secret).
    """
    tick = time.monotonic()
    if _refusals_logged.get(reason, 0.0) > tick:
        return
    _refusals_logged[reason] = tick + 60
    security_log("authz_fail", level=logging.WARNING, reason=reason, status=403)
