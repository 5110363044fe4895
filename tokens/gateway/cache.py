"""The gateway-check cache: keys, markers and purging.

Gateway checks may be answered from the cache (local memory, or Redis shared by every
app server). Any change to a token purges its entry after the change commits and before
the changing request returns, so no cache keeps accepting a revoked token.

Purging does not delete the entry: it overwrites it with a short-lived ``PURGED``
marker. A check that read the database just before a revoke committed would otherwise
write its stale "active" answer back after the delete. Checks only ever populate the
cache with ``cache.add`` (which never overwrites), treat the marker as "ask the
database and do not cache", and give up caching when their own database read took
longer than half the marker's lifetime; so a stale answer can never land while the
marker stands, nor after it lapses.
"""

import logging
import time
import uuid

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save

from portal import aftercommit
from portal.cache.tier import settle_once
from tokens.conf import setting
from tokens.errors import TokenServiceError

logger = logging.getLogger(__name__)

PURGED = "purged"
# While the marker stands, checks of the token go to the database.
PURGE_MARKER_SECONDS = 10
# Changes whenever an API, plan or app changes: each process keeps the catalogue (base
# paths, plans, apps) in memory and reloads it when this version differs from its own.
CATALOGUE_VERSION_KEY = "gw:apis:version"
_PURGE_ATTEMPTS = 3


class CachePurgeFailed(TokenServiceError, RuntimeError):
    """The cache could not be told that a token changed; the change itself is committed."""

    def __init__(self, what: str):
        seconds = setting("GATEWAY_CACHE_SECONDS")
        super().__init__(
            f"The change is saved, but the gateways' shared cache could not be reached to "
            f"purge {what}: gateways may go on answering from it for up to {seconds} seconds."
        )


def token_cache_key(digest: str) -> str:
    return f"gw:tok:{digest}"


def client_cache_key(client_id: str) -> str:
    return f"oauth:client:{client_id}"


def _set_with_retries(key: str, value, timeout: int | None, what: str) -> None:
    for attempt in range(1, _PURGE_ATTEMPTS + 1):
        try:
            cache.set(key, value, timeout)
            return
        except Exception as error:  # any backend error: Redis down, timeout, …
            if attempt == _PURGE_ATTEMPTS:
                logger.error("Could not purge %s from the cache: %r", what, error)
                raise CachePurgeFailed(what) from error
            time.sleep(0.05 * attempt)


def purge_token(digest: str) -> None:
    """Make every app server forget its cached answer for this token (after a change).

    Raises ``CachePurgeFailed`` when the cache stays unreachable: the caller must learn
    that gateways may go on accepting the token until the cached answer lapses
    (``GATEWAY_CACHE_SECONDS`` at most), and may retry the revoke, which purges again.
    """
    _set_with_retries(
        token_cache_key(digest), PURGED, PURGE_MARKER_SECONDS, "the token's cached answer"
    )


def purge_client(client_id: str) -> None:
    _set_with_retries(client_cache_key(client_id), PURGED, PURGE_MARKER_SECONDS, "a client")


def purge_catalogue(_=None) -> None:
    """A new catalogue version: every process reloads its APIs, plans and apps before its
    next answer (``tokens.gateway.check.catalogue``)."""
    _set_with_retries(CATALOGUE_VERSION_KEY, uuid.uuid4().hex, None, "the catalogue")


def server_epoch():
    """The lifetime of the Redis server this thread's reads go to (None without Redis, or
    before the first read): what is kept from one lifetime is not trusted in another."""
    epoch = getattr(cache, "server_epoch", None)
    return epoch() if epoch is not None else None


def read(key: str):
    """The cached value, or ``PURGED`` when the cache cannot be reached (go to the database)."""
    return read_many([key]).get(key)


def read_many(keys: list[str]) -> dict:
    """The cached values of ``keys`` (one round trip); all ``PURGED`` if unreachable."""
    return count_and_read(None, keys)[1]


def count(key: str, timeout: int, amount: int = 1) -> int:
    """Add ``amount`` to the counter ``key`` (created for ``timeout`` seconds); its new
    value. Raises if the cache is unreachable."""
    read_and_count = getattr(cache, "read", None)  # portal's backends: one round trip
    if read_and_count is not None:
        return read_and_count([], (key, timeout, amount))[1]
    try:
        return cache.incr(key, amount)
    except ValueError:  # no counter yet (or another request's, just now)
        return amount if cache.add(key, amount, timeout) else cache.incr(key, amount)


def mark(key: str, timeout: int) -> bool:
    """Set ``key`` for ``timeout`` seconds unless it is set; whether it was not (one round
    trip where the backend has its own ``mark``). Raises if the cache is unreachable."""
    mark_once = getattr(cache, "mark", None)
    return mark_once(key, timeout) if mark_once is not None else cache.add(key, 1, timeout)


def _keep_local(value) -> bool:
    """Whether a process's local tier may keep a value read from the cache: a purge
    marker sends checks to the database while it stands, so it is never kept."""
    return value != PURGED


def count_and_read(
    counter: tuple[str, int, int] | None, keys: list[str]
) -> tuple[int | None, dict]:
    """Add to ``counter`` (``(key, timeout, amount)``, or None) and read ``keys``, together.

    With Redis both go in one round trip. When the cache cannot be reached, the count
    is None and every key reads ``PURGED``: callers let the request through to the
    database, which is always right, only slower.
    """
    try:
        read_and_count = getattr(cache, "read", None)
        if read_and_count is not None:
            values, counted = read_and_count(keys, counter, keep_local=_keep_local)
            return counted, values
        counted = None if counter is None else count(*counter)
        return counted, cache.get_many(keys) if keys else {}
    except Exception as error:  # any backend error: Redis down, timeout, …
        logger.warning("Cache unreachable, answering from the database: %r", error)
        return None, dict.fromkeys(keys, PURGED)


def populate(key: str, value, timeout: int, *, started: float) -> None:
    """Cache what a check read from the database at ``started`` (``time.monotonic()``).

    Never overwrites (a purge marker must win), and gives up when the read is older
    than half a marker's lifetime: a purge that followed it might have lapsed.
    """
    if timeout < 1 or time.monotonic() - started >= PURGE_MARKER_SECONDS / 2:
        return
    try:
        cache.add(key, value, timeout)
    except Exception as error:
        logger.warning("Cache unreachable, not caching: %r", error)


class _Purges:
    """The purges one transaction asks for, made together once it commits.

    Every purge is attempted, whatever the others do (Django stops running a
    transaction's on-commit callbacks at the first that raises, so one callback per
    purge would leave the rest undone); then, if any failed, ``CachePurgeFailed``
    names them all, so that the request that made the change says it is not yet
    effective everywhere, and a retry purges again.
    """

    def __init__(self):
        self.purges: dict[tuple, str] = {}  # (function, argument) → what it purges

    def add(self, purge, argument, what: str) -> None:
        self.purges[(purge, argument)] = what

    def clear(self) -> None:
        self.purges.clear()

    def __call__(self) -> None:
        failed = []
        for (purge, argument), what in self.purges.items():
            try:
                purge(argument)
            except CachePurgeFailed:  # logged by _set_with_retries; the others still run
                failed.append(what)
        if failed:
            raise CachePurgeFailed(_describe(failed))


def _describe(failed: list[str]) -> str:
    counts: dict[str, int] = {}
    for what in failed:
        counts[what] = counts.get(what, 0) + 1
    parts = [what if n == 1 else f"{n} × {what}" for what, n in counts.items()]
    return ", ".join(parts)


def purge_after_commit(purge, argument, what: str) -> None:
    """Run ``purge(argument)`` once the current transaction commits (at once outside one),
    with every other purge of that transaction: all attempted, failures reported together
    (``CachePurgeFailed``, raised after the commit by whatever commits)."""
    aftercommit.group("purges", _Purges).add(purge, argument, what)


def purge_token_after_commit(digest: str) -> None:
    purge_after_commit(purge_token, digest, "a token's cached answer")


_CATALOGUE = "the gateways' catalogue of APIs, plans and apps"


def _app_changed(sender, instance, created=False, **kwargs):
    # Admin edits of an app (secret, activation, name, introspection right) bypass the
    # services, so they are caught here, whoever saves: its client record, and the
    # catalogue that every gateway answer reads the app's state and name from. A new app
    # is in no cache yet (a catalogue that lacks it loads again when a token names it).
    if created:
        return
    purge_after_commit(purge_client, instance.client_id, "an app's cached client record")
    purge_after_commit(purge_catalogue, None, _CATALOGUE)


def _catalogue_changed(sender, instance, created=False, **kwargs):
    if (
        created and sender._meta.model_name != "api"
    ):  # a new API changes which base path matches a URI
        return
    purge_after_commit(purge_catalogue, None, _CATALOGUE)


def _token_deleted(sender, instance, **kwargs):
    # Tokens are revoked, not deleted; should one be deleted anyway, no cache keeps it.
    purge_token_after_commit(instance.digest)


def settle_once_middleware(get_response):
    """Purges published while a request runs (a bulk revoke: one per token) are waited
    for once, before it answers, not one after another (``portal.cache.tier``)."""

    def middleware(request):
        with settle_once():
            return get_response(request)

    return middleware


post_delete.connect(_token_deleted, sender="tokens.AccessToken", dispatch_uid="tp-token-delete")
for _name, _signal in (("save", post_save), ("delete", post_delete)):
    _signal.connect(_app_changed, sender="tokens.App", dispatch_uid=f"tp-app-{_name}")
    _signal.connect(_catalogue_changed, sender="tokens.Api", dispatch_uid=f"tp-api-{_name}")
    _signal.connect(_catalogue_changed, sender="tokens.Plan", dispatch_uid=f"tp-plan-{_name}")
