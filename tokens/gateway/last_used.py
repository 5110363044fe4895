"""A token's "last used": written at most once per ``LAST_USED_RESOLUTION`` seconds per
token, in batches, off the request path where a writer thread runs (the portal's
gunicorn workers). A lost "last used" never fails a check."""

import atexit
import contextlib
import logging
import os
import threading
import time
from datetime import UTC, datetime

from django.db import connection

from tokens.conf import setting
from tokens.gateway import cache
from tokens.gateway.info import TokenInfo
from tokens.models import AccessToken

logger = logging.getLogger(__name__)


_recently_used: dict[str, float] = {}
# Uses still to be written (token id → when, seconds since the epoch), and when the
# next batch is due (monotonic).
_pending_uses: dict[int, float] = {}
_pending_lock = threading.Lock()
_flush_due = 0.0
LAST_USED_BATCH_SECONDS = 1.0


def record_use(digest: str, info: TokenInfo) -> None:
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
        resolution = setting("LAST_USED_RESOLUTION")
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


def forget() -> None:
    """Forget every pending and recent use, as a new process would (tests): the next use
    of a token is recorded, and written at once."""
    global _flush_due
    with _pending_lock:
        _pending_uses.clear()
    _recently_used.clear()
    _flush_due = 0.0
