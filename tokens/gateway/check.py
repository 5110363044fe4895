"""Gateway checks: "is this token good, and for what", forward-auth, and their fast path.

``check_active`` is the one answer that forward-auth (``/gateway/auth``) and RFC 7662
introspection give. Gateways call them on every API request, so answers may come from
the cache (see ``tokens.gateway.cache`` for why a purge can never be undone by a racing check),
cached answers carry the token's expiry and are never served past it, and "last used"
is written at most once per ``LAST_USED_RESOLUTION`` seconds per token. A cached answer
holds the token's own state only; its app, APIs and plans are named by the process's
``Catalogue``, which any change of an app, plan or API replaces everywhere at once.
``tokens.fastpath.GatewayFastPathMiddleware`` answers these two paths before sessions, CSRF, auth,
messages and URL resolution, none of which they need.
"""

import logging
import time
import uuid

from portal.logs import security_log
from tokens import crypto
from tokens.conf import setting
from tokens.gateway import cache, last_used, sql
from tokens.gateway.catalogue import Catalogue, catalogue
from tokens.gateway.info import INACTIVE, TokenInfo

logger = logging.getLogger(__name__)


def now() -> float:
    """The clock of every check (a seam for tests)."""
    return time.time()


def _load(digest: str, at: float) -> TokenInfo | str | None:
    """From the database: TokenInfo, INACTIVE for a known dead token, None if unknown."""
    rows = sql.fetch(digest)
    if not rows:
        return None
    token_id, public_id, owner, created_at, expires_at, revoked, app_id = rows[0][:7]
    public_id = str(uuid.UUID(public_id))  # SQLite stores it without dashes
    expires_at = sql.timestamp(expires_at)
    if revoked:
        # Logged when read from the database: at most once per cache lifetime per token.
        security_log("authn_token_reuse", level=logging.WARNING, token=public_id)
        return INACTIVE
    if expires_at is not None and expires_at <= at:
        return INACTIVE
    return TokenInfo(
        token_id=token_id,
        public_id=public_id,
        app_id=app_id,
        owner=owner,
        issued_at=int(sql.timestamp(created_at)),
        expires_at=expires_at,
        grants=tuple(sorted((row[7], row[8]) for row in rows if row[7] is not None)),
    )


def _resolve(digest: str, cached, at: float) -> TokenInfo | None:
    """The answer for ``digest``, given what the cache held for it."""
    if isinstance(cached, TokenInfo):
        return cached if cached.is_live(at) else None
    if cached == INACTIVE:
        return None
    started = time.monotonic()
    loaded = _load(digest, at)
    lifetime = setting("GATEWAY_CACHE_SECONDS")
    # Only a miss may be filled: PURGED means "a change just happened, ask the database".
    if cached is None and loaded is not None:
        if isinstance(loaded, TokenInfo) and loaded.expires_at is not None:
            lifetime = min(lifetime, int(loaded.expires_at - at))
        cache.populate(cache.token_cache_key(digest), loaded, lifetime, started=started)
    return loaded if isinstance(loaded, TokenInfo) else None


NOT_READ = object()


def check_token(secret: str, *, at: float | None = None, record_use: bool = True, cached=NOT_READ):
    """The active token whose secret is ``secret``, as ``TokenInfo``; None if inactive.

    Malformed secrets are refused without touching the cache or the database.
    ``cached`` is what the cache holds under ``cache.token_cache_key(digest)`` when the
    caller already read it (together with other keys, to save a round trip).
    """
    if not crypto.looks_like_token(secret):
        return None
    return check_digest(crypto.digest(secret), at=at, record_use=record_use, cached=cached)


def check_digest(
    digest: str,
    *,
    at: float | None = None,
    record_use: bool = True,
    cached=NOT_READ,
    version=NOT_READ,
) -> TokenInfo | None:
    """``check_token`` of a well-formed secret, by its digest (for a caller that has
    checked the format and made the digest already). ``version`` is the catalogue's
    version when the caller read it with ``cached``."""
    active = check_active(digest, at=at, record_use=record_use, cached=cached, version=version)
    return None if active is None else active[0]


def check_active(
    digest: str,
    *,
    at: float | None = None,
    record_use: bool = True,
    cached=NOT_READ,
    version=NOT_READ,
) -> tuple[TokenInfo, "Catalogue"] | None:
    """The active token of ``digest`` with the catalogue that names its app, APIs and
    plans; None if the token is unknown, revoked or expired, or its app is inactive."""
    at = now() if at is None else at
    if cached is NOT_READ or version is NOT_READ:
        token_key = cache.token_cache_key(digest)
        read = cache.read_many([token_key, cache.CATALOGUE_VERSION_KEY])
        cached = read.get(token_key) if cached is NOT_READ else cached
        version = read.get(cache.CATALOGUE_VERSION_KEY) if version is NOT_READ else version
    info = _resolve(digest, cached, at)
    if info is None:
        return None
    known = catalogue(version, info)
    if not known.admits(info):
        return None
    if record_use:
        last_used.record_use(digest, info)
    return info, known
