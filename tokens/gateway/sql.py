"""The check's one query: a token by digest, with its APIs' and plans' ids.

Plain SQL built once from the models' tables, run on the driver's own connection (and
prepared once per connection on PostgreSQL): the ORM would compile the statement again
on every cache miss, which costs more than running it (bench/RESULTS.md).
"""

import functools
import threading
import time
import weakref
from datetime import UTC

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.dateparse import parse_datetime

from tokens.models import AccessToken, TokenApi

# --- the check ---------------------------------------------------------------------


@functools.cache
def load_sql(vendor: str = "sqlite") -> str:
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


def timestamp(value) -> float | None:
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


def fetch(digest: str) -> list[tuple]:
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
                cursor.execute(load_sql(), [digest])
                rows = cursor.fetchall()
            finally:
                cursor.close()
    if db.queries_logged:  # as Django's debug cursor would
        took = time.monotonic() - started
        db.queries_log.append({"sql": load_sql(db.vendor), "time": f"{took:.3f}"})
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
    result = pgconn.prepare(_STATEMENT, load_sql("postgresql").encode())
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
