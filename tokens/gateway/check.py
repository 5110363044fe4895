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

import atexit
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
import weakref
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import quote

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.http import HttpResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from portal.logs import security_log
from tokens import crypto
from tokens.gateway import cache
from tokens.gateway.paths import normalise_path, original_uri  # noqa: F401 (original_uri: re-exported)
from tokens.models import AccessToken, Api, App, Plan, TokenApi

logger = logging.getLogger(__name__)

REALM = "token-portal"
INACTIVE = "inactive"  # cached answer for a known token that is revoked or expired: final


class ApiGrant(NamedTuple):
    """One API of an active token, with its plan, as the catalogue names them now."""

    api_id: int
    name: str
    version: str
    base_path: str
    plan: str
    rate_limit: int | None


class TokenInfo(NamedTuple):
    """What a gateway learns about an active token (cached as is: keep it small).

    Only the token's own state: its app, APIs and plans are ids, named by the catalogue
    (``catalogue``), so a change of an app (deactivated, renamed), a plan or an API
    reaches every answer at once, without purging any token's entry.
    """

    token_id: int
    public_id: str
    app_id: int
    owner: str
    issued_at: int  # seconds since the epoch
    expires_at: float | None  # seconds since the epoch; None: never
    grants: tuple[tuple[int, int], ...]  # (api id, plan id)

    def is_live(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


def now() -> float:
    """The clock of every check (a seam for tests)."""
    return time.time()


def _setting(name: str) -> int:
    return settings.TOKEN_PORTAL[name]


# --- the check ---------------------------------------------------------------------


@functools.cache
def _load_sql(vendor: str = "sqlite") -> str:
    """One indexed query for a check: the token by digest, with its APIs' and plans' ids.

    Plain SQL built once from the models' tables: the ORM would compile the same
    statement again on every cache miss, which costs more than running it. PostgreSQL's
    form takes ``$1`` (a prepared statement) and answers times as seconds since the
    epoch, which are cheaper to read than timestamps.
    """
    token, link = (model._meta.db_table for model in (AccessToken, TokenApi))
    times = "t.created_at, t.expires_at"
    if vendor == "postgresql":
        times = "extract(epoch FROM t.created_at)::float8, extract(epoch FROM t.expires_at)::float8"
    return (
        f"SELECT t.id, t.public_id, t.owner, {times}, t.revoked_at IS NOT NULL,"  # noqa: S608
        " t.app_id, l.api_id, l.plan_id"
        f" FROM {token} t LEFT JOIN {link} l ON l.token_id = t.id"
        f" WHERE t.digest = {'$1' if vendor == 'postgresql' else '?'}"
    )


def _timestamp(value) -> float | None:
    """Seconds since the epoch of a datetime column as the driver returns it.

    PostgreSQL's query answers seconds already; SQLite's driver returns the UTC text
    Django stored (Django converts it only for ORM queries).
    """
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, str):
        value = parse_datetime(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _fetch(digest: str) -> list[tuple]:
    """The rows of ``_load_sql`` for ``digest``, on the driver's own connection.

    Django's cursor wrapper is skipped (on SQLite it costs more than the query), and on
    PostgreSQL psycopg's cursor too: the statement is prepared once per connection and
    run through libpq directly (planning its joins costs the server more than running
    it, and psycopg's cursor costs the client more than the round trip). Django's
    duties are kept: the health check when one is due, errors turned into Django's
    (``wrap_database_errors``, which also marks the connection for a check after the
    request), and the query log in DEBUG and tests.
    """
    db = connections[DEFAULT_DB_ALIAS]
    db.close_if_health_check_failed()
    db.ensure_connection()
    started = time.monotonic()
    with db.wrap_database_errors:
        if db.vendor == "postgresql":
            rows = _fetch_postgresql(db.connection.pgconn, digest)
        else:
            cursor = db.connection.cursor()
            try:
                cursor.execute(_load_sql(), [digest])
                rows = cursor.fetchall()
            finally:
                cursor.close()
    if db.queries_logged:  # as Django's debug cursor would
        took = time.monotonic() - started
        db.queries_log.append({"sql": _load_sql(db.vendor), "time": f"{took:.3f}"})
    return rows


_STATEMENT = b"token_portal_gateway_check"
# The libpq connections the statement is prepared on (whichever thread or pool uses them).
_prepared: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_prepared_lock = threading.Lock()
# A prepared statement that its session lost (a pooler's DISCARD ALL: 26000), that is
# there already (another process's, through a pooler: 42P05), or whose plan a schema
# change broke ("cached plan must not change result type": 0A000): prepared again, once.
_PREPARE_AGAIN = {b"26000", b"42P05", b"0A000"}


def _database_error(pgconn, result):
    import psycopg
    from psycopg import pq

    message = result.error_message.decode(errors="replace")
    if pgconn.status != pq.ConnStatus.OK:  # the connection is gone: Django closes it after
        return psycopg.OperationalError(message)
    return psycopg.DatabaseError(message)


def _prepare(pgconn, *, again: bool) -> None:
    from psycopg import pq

    if again:
        pgconn.exec_(b"DEALLOCATE " + _STATEMENT)  # fails harmlessly if it is not there
    result = pgconn.prepare(_STATEMENT, _load_sql("postgresql").encode())
    state = result.error_field(pq.DiagnosticField.SQLSTATE)
    if result.status != pq.ExecStatus.COMMAND_OK and not (state == b"42P05" and not again):
        raise _database_error(pgconn, result)
    with _prepared_lock:
        _prepared[pgconn] = True


def _fetch_postgresql(pgconn, digest: str) -> list[tuple]:
    """The check's rows through libpq. Inside a transaction block the statement runs in
    that transaction only once psycopg has begun it; the gateway's callers run none."""
    from psycopg import pq

    for again in (False, True):
        if again or pgconn not in _prepared:
            _prepare(pgconn, again=again)
        result = pgconn.exec_prepared(_STATEMENT, [digest.encode()])
        if result.status == pq.ExecStatus.TUPLES_OK:
            break
        state = result.error_field(pq.DiagnosticField.SQLSTATE)
        if again or state not in _PREPARE_AGAIN or pgconn.status != pq.ConnStatus.OK:
            raise _database_error(pgconn, result)
    value = result.get_value
    rows = []
    for row in range(result.ntuples):
        raw = [value(row, column) for column in range(9)]
        text = [None if item is None else item.decode() for item in raw]
        rows.append(
            (
                int(text[0]),
                text[1],
                text[2],
                float(text[3]),
                None if text[4] is None else float(text[4]),
                text[5] == "t",
                int(text[6]),
                None if text[7] is None else int(text[7]),
                None if text[8] is None else int(text[8]),
            )
        )
    return rows


def _load(digest: str, at: float) -> TokenInfo | str | None:
    """From the database: TokenInfo, INACTIVE for a known dead token, None if unknown."""
    rows = _fetch(digest)
    if not rows:
        return None
    token_id, public_id, owner, created_at, expires_at, revoked, app_id = rows[0][:7]
    public_id = str(uuid.UUID(public_id))  # SQLite stores it without dashes
    expires_at = _timestamp(expires_at)
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
        issued_at=int(_timestamp(created_at)),
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
    lifetime = _setting("GATEWAY_CACHE_SECONDS")
    # Only a miss may be filled: PURGED means "a change just happened, ask the database".
    if cached is None and loaded is not None:
        if isinstance(loaded, TokenInfo) and loaded.expires_at is not None:
            lifetime = min(lifetime, int(loaded.expires_at - at))
        cache.populate(cache.token_cache_key(digest), loaded, lifetime, started=started)
    return loaded if isinstance(loaded, TokenInfo) else None


_recently_used: dict[str, float] = {}
# Uses still to be written (token id → when, seconds since the epoch), and when the
# next batch is due (monotonic).
_pending_uses: dict[int, float] = {}
_pending_lock = threading.Lock()
_flush_due = 0.0
LAST_USED_BATCH_SECONDS = 1.0


def _record_use(digest: str, info: TokenInfo) -> None:
    """Set "last used", at most once per LAST_USED_RESOLUTION seconds per token.

    The per-process memo only spares the cache a round trip; the cache key makes the
    limit hold across processes. Neither can make a token valid, so neither is a risk.
    Writes are batched, at most one statement a second per process: a gateway's first
    sight of thousands of tokens (a restart, every minute's renewal) is then a few
    writes a second, not one per token. In a process that runs the writer thread
    (``start_last_used_writer``: the portal's gunicorn workers) the thread writes them,
    off the request path; elsewhere, the first check after the second has passed does
    (a use after a quiet second at once), and the process's exit.
    """
    try:
        tick = time.monotonic()
        inline = _writer_pid != os.getpid()
        if inline and _pending_uses and tick >= _flush_due:
            flush_last_used()
        resolution = _setting("LAST_USED_RESOLUTION")
        if _recently_used.get(digest, 0.0) > tick:
            return
        if len(_recently_used) > 10_000:
            _recently_used.clear()
        _recently_used[digest] = tick + resolution
        if cache.mark(f"gw:used:{digest}", resolution):
            with _pending_lock:
                _pending_uses[info.token_id] = time.time()
            if inline and tick >= _flush_due:
                flush_last_used()
    except Exception as error:  # a lost "last used" must never fail the check
        logger.warning("Could not record the use of token %s: %r", info.public_id, error)


def flush_last_used() -> None:
    """Write "last used" for every token whose use is pending: one statement per second
    of use, stamped with that second's last use (however late the batch is written).
    Uses whose write fails stay pending, for the next batch."""
    global _flush_due, _pending_uses
    with _pending_lock:
        _flush_due = time.monotonic() + LAST_USED_BATCH_SECONDS
        pending, _pending_uses = _pending_uses, {}
    by_second: dict[int, list[int]] = {}
    for token_id, used in pending.items():
        by_second.setdefault(int(used), []).append(token_id)
    try:
        for token_ids in by_second.values():  # each stamped with its second's last use
            when = max(pending[token_id] for token_id in token_ids)
            _write_last_used(sorted(token_ids), datetime.fromtimestamp(when, UTC))
    except Exception:
        with _pending_lock:  # kept for the next batch, up to a bound (the database may stay down)
            for token_id, used in list(pending.items())[: max(0, 100_000 - len(_pending_uses))]:
                _pending_uses.setdefault(token_id, used)
        raise


_writer_pid: int | None = None  # the process whose writer thread runs
_writer: object | None = None  # that thread's token: a thread whose token is gone ends


def start_last_used_writer() -> None:
    """Write "last used" from a thread of this process, once a second, instead of from
    the check that finds a batch due: a batch (up to thousands of rows, each in every
    index of the table) then never holds up a check. The thread has its own database
    connection; a batch that fails stays pending, as ever. Started by the portal's
    gunicorn worker after it has loaded the application (``gunicorn.conf.py``)."""
    global _writer, _writer_pid
    if _writer_pid == os.getpid():
        return
    _writer = token = object()
    _writer_pid = os.getpid()
    threading.Thread(target=_write_uses, args=(token,), name="last-used", daemon=True).start()


def stop_last_used_writer() -> None:
    """Back to writing from the checks (the thread ends at its next wake-up)."""
    global _writer, _writer_pid
    _writer = _writer_pid = None


def _write_uses(token: object) -> None:
    while _writer is token:
        time.sleep(LAST_USED_BATCH_SECONDS)
        if not _pending_uses or _writer is not token:
            continue
        try:
            flush_last_used()
        except Exception as error:  # kept pending; the next batch tries again
            logger.warning("Could not record the last uses: %r", error)
            with contextlib.suppress(Exception):  # closing a broken one may fail too
                connection.close_if_unusable_or_obsolete()  # this thread's connection
    connection.close()


def _flush_at_exit() -> None:
    try:
        flush_last_used()
    except Exception as error:  # the database may be gone already
        logger.warning("Could not record the last uses at exit: %r", error)


atexit.register(_flush_at_exit)


_UNREAD = object()


def _write_last_used(token_ids: list[int], when: datetime) -> None:
    """``last_used_at = when`` for these tokens, without waiting for the disk on PostgreSQL.

    A check that writes waits for the commit's WAL flush (several milliseconds) on
    PostgreSQL; measured, that halved gateway throughput while tokens were first seen.
    "Last used" is approximate by design, so this write commits asynchronously
    (``synchronous_commit`` off for its own one-statement transaction only: a crash may
    lose the last fraction of a second of it, never a revoke or any other change).
    """
    if connection.vendor != "postgresql":
        for start in range(0, len(token_ids), 500):  # SQLite's limit on parameters
            chunk = token_ids[start : start + 500]
            AccessToken.objects.filter(pk__in=chunk).update(last_used_at=when)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AccessToken._meta.db_table} SET last_used_at = %s"  # noqa: S608
            " WHERE id = ANY(%s) AND set_config('synchronous_commit', 'off', true) = 'off'",
            [when, token_ids],
        )


def check_token(secret: str, *, at: float | None = None, record_use: bool = True, cached=_UNREAD):
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
    cached=_UNREAD,
    version=_UNREAD,
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
    cached=_UNREAD,
    version=_UNREAD,
) -> tuple[TokenInfo, "Catalogue"] | None:
    """The active token of ``digest`` with the catalogue that names its app, APIs and
    plans; None if the token is unknown, revoked or expired, or its app is inactive."""
    at = now() if at is None else at
    if cached is _UNREAD or version is _UNREAD:
        token_key = cache.token_cache_key(digest)
        read = cache.read_many([token_key, cache.CATALOGUE_VERSION_KEY])
        cached = read.get(token_key) if cached is _UNREAD else cached
        version = read.get(cache.CATALOGUE_VERSION_KEY) if version is _UNREAD else version
    info = _resolve(digest, cached, at)
    if info is None:
        return None
    known = catalogue(version, info)
    if not known.admits(info):
        return None
    if record_use:
        _record_use(digest, info)
    return info, known


# --- matching the original URI to an API ------------------------------------------


class AppInfo(NamedTuple):
    client_id: str
    name: str
    is_active: bool


class Catalogue(NamedTuple):
    """The APIs, plans and apps that gateway answers name, as of one catalogue version.

    Kept in each process's memory: read on every check, changed rarely. Any change of
    an API, plan or app through the ORM sets a new version after it commits
    (``cache.purge_catalogue``), and every check reads the version before it answers,
    so no process answers from a catalogue older than such a change; changes that
    bypass the ORM (bulk SQL) are picked up within ``GATEWAY_CACHE_SECONDS``.
    """

    version: str | None
    loaded_at: float  # time.monotonic()
    index: dict[str, int]  # normalised base path → API id
    apis: dict[int, tuple[str, str, str]]  # id → (name, version, base path)
    plans: dict[int, tuple[str, int | None]]  # id → (name, rate limit)
    apps: dict[int, AppInfo]

    def knows(self, info: TokenInfo) -> bool:
        return info.app_id in self.apps and all(
            api_id in self.apis and plan_id in self.plans for api_id, plan_id in info.grants
        )

    def admits(self, info: TokenInfo) -> bool:
        """Whether the token's app lets it be used (an inactive app stops its tokens)."""
        app = self.apps.get(info.app_id)
        return app is not None and app.is_active

    def grant(self, info: TokenInfo, api_id: int | None) -> ApiGrant | None:
        for granted, plan_id in info.grants:
            if granted == api_id:
                return ApiGrant(api_id, *self.apis[api_id], *self.plans[plan_id])
        return None

    def grants(self, info: TokenInfo) -> list[ApiGrant]:
        """Every API of the token, ordered by name and version."""
        grants = [ApiGrant(a, *self.apis[a], *self.plans[p]) for a, p in info.grants]
        return sorted(grants, key=lambda grant: (grant.name, grant.version))


def _load_catalogue(version: str | None) -> Catalogue:
    index, apis = {}, {}
    for api_id, name, api_version, base_path in Api.objects.values_list(
        "id", "name", "version", "base_path"
    ):
        apis[api_id] = (name, api_version, base_path)
        path = normalise_path(base_path)
        if path is not None:
            index[path] = api_id
    plans = {
        plan_id: (name, rate_limit)
        for plan_id, name, rate_limit in Plan.objects.values_list("id", "name", "rate_limit")
    }
    apps = {
        app_id: AppInfo(*row)
        for app_id, *row in App.objects.values_list("id", "client_id", "name", "is_active")
    }
    return Catalogue(version, time.monotonic(), index, apis, plans, apps)


_catalogue = Catalogue(None, 0.0, {}, {}, {}, {})


def catalogue(version, info: TokenInfo | None = None) -> Catalogue:
    """The catalogue for the cache's version ``version`` (reloaded when it differs from
    this process's, or is older than ``GATEWAY_CACHE_SECONDS``, or does not know what
    ``info`` names: an app or plan created since, which changes no version)."""
    global _catalogue
    kept = _catalogue
    if (
        version is not None
        and version != cache.PURGED
        and kept.version == version
        and time.monotonic() - kept.loaded_at < _setting("GATEWAY_CACHE_SECONDS")
        and (info is None or kept.knows(info))
    ):
        return kept
    if version is None:  # first use, or evicted: start a version
        version = uuid.uuid4().hex
        try:
            if not cache.cache.add(cache.CATALOGUE_VERSION_KEY, version, None):
                version = cache.cache.get(cache.CATALOGUE_VERSION_KEY)
        except Exception as error:
            logger.warning("Cache unreachable, catalogue from the database: %r", error)
            version = None
    loaded = _load_catalogue(version)
    if version is not None and version != cache.PURGED:
        _catalogue = loaded
    return loaded


def forget_catalogue() -> None:
    """Drop this process's catalogue (tests; the next check loads it)."""
    global _catalogue
    _catalogue = Catalogue(None, 0.0, {}, {}, {}, {})


def match_api(path: str | None, index: dict[str, int]) -> int | None:
    """The id of the API whose base path is the longest prefix of ``path``, by segments."""
    if path is None:
        return None
    candidate = path
    while True:
        api_id = index.get(candidate)
        if api_id is not None:
            return api_id
        if candidate == "/":
            return None
        candidate = candidate.rsplit("/", 1)[0] or "/"


_scope_refusals_logged: dict[str, float] = {}


def _log_scope_refusal(info: TokenInfo, path: str) -> None:
    """``authz_fail`` for a token refused an API, at most once a minute per token and process.

    A gateway asks on every API request: a client calling an API its token lacks would
    otherwise write a log line per request, and a log flood hides the events that matter.
    """
    tick = time.monotonic()
    if _scope_refusals_logged.get(info.public_id, 0.0) > tick:
        return
    if len(_scope_refusals_logged) > 10_000:
        _scope_refusals_logged.clear()
    _scope_refusals_logged[info.public_id] = tick + 60
    security_log("authz_fail", level=logging.WARNING, token=info.public_id, path=path, status=403)


# --- forward-auth ------------------------------------------------------------------

# What header values may hold as they are; everything else is percent-encoded (UTF-8),
# so owners with non-ASCII letters or line breaks can never break a response.
_HEADER_SAFE = " !\"#$&'()*+,-./:;<=>?@[]^_`{|}~"


@functools.lru_cache(maxsize=4096)
def header_value(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


class Answer(NamedTuple):
    """A forward-auth answer: its status and headers (it never has a body)."""

    status: int
    headers: tuple[tuple[str, str], ...]


def _challenge(status: int, error: str | None = None) -> Answer:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return Answer(status, (("WWW-Authenticate", challenge), ("Cache-Control", "no-store")))


_UNAVAILABLE = Answer(503, (("Retry-After", "1"), ("Cache-Control", "no-store")))


def bearer_secret(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def forward_auth_answer(authorization: str | None, original_uri: str | None, path: str) -> Answer:
    """The forward-auth answer for a request's ``Authorization`` and original URI.

    The one implementation behind ``forward_auth`` (Django's stack) and the WSGI fast
    path (``tokens.fastpath``); ``path`` is the endpoint's own path, for the log.
    """
    secret = bearer_secret(authorization)
    if secret is None:
        return _challenge(401)
    if not crypto.looks_like_token(secret):
        return _challenge(401, "invalid_token")
    at = now()
    digest = crypto.digest(secret)
    token_key = cache.token_cache_key(digest)
    version_key = cache.CATALOGUE_VERSION_KEY
    cached = cache.read_many([token_key, version_key])
    try:
        active = check_active(
            digest, at=at, cached=cached.get(token_key), version=cached.get(version_key)
        )
    except DatabaseError:
        logger.exception("Gateway check failed: database unavailable")
        return _UNAVAILABLE
    if active is None:
        return _challenge(401, "invalid_token")
    info, known = active
    grant = known.grant(info, match_api(normalise_path(original_uri), known.index))
    if grant is None:
        # Sampled: a client calling an API its token lacks asks on every request.
        _log_scope_refusal(info, path)
        return _challenge(403, "insufficient_scope")

    app = known.apps[info.app_id]
    headers = [
        ("Cache-Control", "no-store"),
        ("X-Token-Id", info.public_id),
        ("X-Token-Client-Id", app.client_id),
        ("X-Token-App", header_value(app.name)),
        ("X-Token-Owner", header_value(info.owner)),
        ("X-Token-Api", header_value(grant.name)),
        ("X-Token-Api-Version", header_value(grant.version)),
        ("X-Token-Plan", header_value(grant.plan)),
    ]
    if grant.rate_limit is not None:
        headers.append(("X-Token-Rate-Limit", str(grant.rate_limit)))
    return Answer(200, tuple(headers))


@csrf_exempt
def forward_auth(request) -> HttpResponse:
    """nginx ``auth_request``, Traefik ForwardAuth, Envoy ext_authz (HTTP); any method."""
    answer = forward_auth_answer(
        request.META.get("HTTP_AUTHORIZATION"), original_uri(request.META), request.path
    )
    response = HttpResponse(status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    if answer.status == 403:
        # PortalSecurityMiddleware logs every other 403; this one is sampled.
        response.authz_logged = True
    return response
