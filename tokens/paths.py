"""Which path a gateway check is about: the original URI's header, and the path as the
gateway routes it (or None when servers could read it differently: refused with 403)."""

import functools
import re
from urllib.parse import unquote, urlsplit

# Left after decoding, these mean double encoding, a backslash or a control character.
_AMBIGUOUS = re.compile(r"[%\\\x00-\x1f\x7f]")


def normalise_path(uri: str | None) -> str | None:
    """The path of ``uri`` as an upstream would finally see it, or None if ambiguous.

    Query and fragment are dropped, percent-encoding decoded, empty and dot segments
    resolved (also ``..;x``, which some servers treat as ``..``), so that
    ``/allowed/../secret`` and ``/allowed/%2e%2e/secret`` are ``/secret``. Encoded
    slashes and backslashes, double encoding and control characters are refused:
    upstreams disagree on what they mean, and a guess could let a request through.
    """
    if not uri:
        return None
    # Only the path is kept (and memoised): a query string may hold anything, secrets too.
    return _normalise(uri.split("#", 1)[0].split("?", 1)[0])


@functools.lru_cache(maxsize=4096)  # gateways ask about the same few paths again and again
def _normalise(path: str) -> str | None:
    if "://" in path:
        path = urlsplit(path).path
    if not path.startswith("/") or "\\" in path:
        return None
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered:
        return None
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if _AMBIGUOUS.search(decoded):
        return None
    segments: list[str] = []
    for segment in decoded.split("/"):
        core = segment.split(";", 1)[0]
        if not segment or core == ".":
            continue
        if core == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def original_uri(meta) -> str | None:
    """The URI the gateway is asking about: nginx's ``X-Original-URI`` or Traefik's header."""
    return meta.get("HTTP_X_ORIGINAL_URI") or meta.get("HTTP_X_FORWARDED_URI")
