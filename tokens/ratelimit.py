"""Fixed-window rate limits for the OAuth endpoints, counted in the Django cache.

With Redis as the cache the counters are shared by every app server, so a burst spread
over processes is counted once. Limits live in ``settings.TOKEN_PORTAL["RATE_LIMITS"]``
as ``{scope: "N/s" | "N/m" | "N/h"}``; a missing or empty limit means no limit.

Two kinds of limit: request rates (``retry_after``, ``count``: per client address at
the token and revocation endpoints; per client at introspection, counted only once the
client authenticated, ``add`` and ``due``), and the budget of failed client
authentications (``FAILURES``: per address and per client), which a client that
authenticates correctly never uses up and is never stopped by (docs/gateway.md, "Rate
limits").
"""

import collections
import functools
import hashlib
import logging
import math
import re
import threading
import time
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache as django_cache

from tokens.gateway import cache

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600}


@functools.lru_cache(maxsize=64)
def parse_limit(limit: str) -> tuple[int, int]:
    """``"60/m"`` → (60, 60): at most that many requests per that many seconds."""
    count, _, period = limit.partition("/")
    return int(count), _PERIODS[period.strip().lower()[:1]]


class Window(NamedTuple):
    """The current fixed window of one client in one scope."""

    key: str  # its counter in the cache
    allowed: int
    period: int  # seconds
    started: float  # time.time() when it was asked for

    def retry_after(self, count: int | None) -> int | None:
        """None while ``count`` is within the limit (or unknown), else seconds to wait."""
        if count is None or count <= self.allowed:
            return None
        window = int(self.started // self.period)
        return max(1, math.ceil((window + 1) * self.period - self.started))


_PLAIN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


def _subject(client: str) -> str:
    """``client`` as it appears in a cache key: as is when it is plain (an address, a
    client_id the portal made), else a digest (any text a client sends)."""
    if _PLAIN.fullmatch(client):
        return client
    return "h" + hashlib.sha256(client.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def window(scope: str, client: str) -> Window | None:
    """The window to count a request of ``client`` in ``scope``; None if it has no limit."""
    limit = settings.TOKEN_PORTAL.get("RATE_LIMITS", {}).get(scope)
    if not limit:
        return None
    allowed, period = parse_limit(limit)
    now = time.time()
    key = f"rl:{scope}:{int(now // period)}:{_subject(client)}"
    return Window(key, allowed, period, now)


# Requests counted in this process and not yet added to the shared counter, by window
# key: [not yet added, the shared count as last seen]. Only limits counted in batches
# have one; the oldest is dropped beyond _TALLY_MAX (its window has most likely ended,
# and at worst its batch is counted late).
_tally: collections.OrderedDict[str, list] = collections.OrderedDict()
_tally_lock = threading.Lock()
_TALLY_MAX = 10_000


def batch_size(current: Window) -> int:
    """How many requests a process counts before it adds them to the shared counter.

    1 (every request, exactly) for small limits; a hundredth of the limit for large
    ones, which gateways reach (introspection: 10,000 a second), so that counting
    costs a cache round trip per hundred requests, not per request. Over ``P``
    processes a window may admit up to ``P × batch`` requests more than its limit.
    """
    return max(1, current.allowed // 100)


def take(current: Window) -> int:
    """Count one request in this process: how many to add to the shared counter now
    (a batch is full), or 0."""
    batch = batch_size(current)
    if batch == 1:
        return 1  # counted exactly, nothing kept here
    with _tally_lock:
        entry = _entry(current.key)
        entry[0] += 1
        if entry[0] < batch:
            return 0
        due, entry[0] = entry[0], 0
        return due


def _entry(key: str) -> list:
    """This process's tally of the window ``key`` (made if new); hold ``_tally_lock``."""
    entry = _tally.get(key)
    if entry is None:
        while len(_tally) >= _TALLY_MAX:
            _tally.popitem(last=False)
        entry = _tally[key] = [0, 0]
    return entry


def add(current: Window, *, now: bool = False) -> int | None:
    """Count one request in this process and return the window's count with it (None:
    the cache is down).

    For a request counted only after a round trip it needed anyway (introspection's,
    once the client has authenticated): a full batch goes to the shared counter with the
    next request's round trip (``due``). Small limits (a batch of one) are counted
    exactly, at once, in a round trip of their own; so is any batch when ``now``.
    """
    with _tally_lock:
        entry = _entry(current.key)
        entry[0] += 1
        counted = entry[1] + entry[0]
    if not now and batch_size(current) > 1:
        return counted
    amount = due(current)
    if not amount:
        return counted
    try:
        return estimate(current, cache.count(current.key, current.period + 1, amount))
    except Exception as error:
        untake(current, amount)
        logger.warning("Rate limit not applied, cache unreachable: %r", error)
        return None


def due(current: Window) -> int:
    """How many requests ``add`` counted here to add to the shared counter in this round
    trip: all of them once they make a batch, else 0."""
    with _tally_lock:
        entry = _tally.get(current.key)
        if entry is None or entry[0] < batch_size(current):
            return 0
        amount, entry[0] = entry[0], 0
        return amount


def untake(current: Window, due: int) -> None:
    """``due`` requests that could not be added to the shared counter: kept for the next
    batch."""
    with _tally_lock:
        entry = _tally.get(current.key)
        if entry is not None:
            entry[0] += due


def estimate(current: Window, shared: int | None = None) -> int:
    """The window's count: the shared counter (``shared``, as just returned by adding a
    batch, else as last seen) plus this process's requests not yet added to it."""
    with _tally_lock:
        entry = _tally.get(current.key)
        if entry is None:
            return shared or 0
        if shared is not None:
            entry[1] = shared
        return entry[1] + entry[0]


def count(current: Window | None) -> int | None:
    """Count one request in ``current``; None when there is no limit or the cache is down
    (an outage lets requests through: it must not take the endpoints down with it)."""
    if current is None:
        return None
    due = take(current)
    if not due:
        return estimate(current)
    try:
        return estimate(current, cache.count(current.key, current.period + 1, due))
    except Exception as error:
        untake(current, due)
        logger.warning("Rate limit not applied, cache unreachable: %r", error)
        return None


def retry_after(scope: str, client: str) -> int | None:
    """Count one request of ``client`` against ``scope``.

    Returns None when it is within the limit, else the seconds to wait (for
    ``Retry-After``).
    """
    current = window(scope, client)
    if current is None:
        return None
    return current.retry_after(count(current))


# --- Failed client authentications ---------------------------------------------------

FAILURES = "client_auth"  # the scope: failures per client address, and per client_id
# A correct authentication makes its (client, address) pair "known" for this long: while
# its address is over its failure budget, a known pair is still let in.
KNOWN_SECONDS = 3600
_KNOWN_REFRESH = 600  # a process renews a pair's mark in the cache at most this often
_MEMO_MAX = 10_000

# (client_id, address) → _monotonic() when this process last marked the pair known in
# the cache: introspection's everyday answer asks it with a dictionary look-up only.
_known: dict[tuple[str, str], float] = {}
_monotonic = time.monotonic


def _failure_windows(remote_addr: str, client_id: str | None) -> dict[str, Window]:
    """The failure windows a request counts in, by budget: ``"address"``, and ``"client"``
    if it names one. Empty when failures have no limit."""
    subjects = {"address": f"address:{remote_addr}"}
    if client_id:
        subjects["client"] = f"client:{client_id}"
    return {
        budget: current
        for budget, who in subjects.items()
        if (current := window(FAILURES, who)) is not None
    }


def _known_key(client_id: str, remote_addr: str) -> str:
    return "rl:known:" + _subject(f"{client_id}\x00{remote_addr}")


def known_here(remote_addr: str, client_id: str) -> bool:
    """Whether this process may skip the failure budgets for this request: the pair
    authenticated correctly here lately (a known pair is never refused), or failures
    have no limit. A dictionary look-up: introspection's everyday answer asks it; on
    False the request takes the full path, whose ``lock`` reads the shared counters.
    """
    seen = _known.get((client_id, remote_addr))
    if seen is not None and _monotonic() - seen < KNOWN_SECONDS:
        return True
    return not settings.TOKEN_PORTAL.get("RATE_LIMITS", {}).get(FAILURES)


class Lock(NamedTuple):
    """A request's address or client is over its failure budget."""

    wait: int  # seconds, for Retry-After
    address: bool  # the address is over its budget
    client: bool  # the client is over its budget
    known: bool  # the pair (client, address) authenticated correctly lately

    @property
    def unchecked(self) -> bool:
        """Refused before its credentials are checked: its address failed its budget and
        the pair is not known. (An address that fails is the attacker's; a client's
        name is anyone's to fail in, so the client's budget refuses wrong secrets only.)
        """
        return self.address and not self.known

    def over(self, budget: str) -> bool:
        """Whether the request's ``"address"`` or ``"client"`` budget is used up."""
        return self.address if budget == "address" else self.client


def lock(remote_addr: str, client_id: str | None) -> Lock | None:
    """Whether the request's address or client is over its failure budget (None: not),
    asked before any credential is checked. One cache round trip; a cache outage lets
    the request through (logged).

    Over the address's budget, a request is refused before its credentials are checked
    (``Lock.unchecked``), unless its pair (client, address) authenticated correctly in
    the last ``KNOWN_SECONDS``. Over the client's budget alone, its credentials are
    checked: a right secret is answered (a new instance of a gateway, from an address
    of its own, is not kept out by failures in its name), a wrong one refused.
    """
    windows = _failure_windows(remote_addr, client_id)
    if not windows:
        return None
    keys = [current.key for current in windows.values()]
    known = _known_key(client_id, remote_addr) if client_id else None
    try:
        values = django_cache.get_many(keys + [known] if known else keys)
    except Exception as error:
        logger.warning("Failure limit not applied, cache unreachable: %r", error)
        return None
    # Locked once the budget is used up: the next failure would be one too many.
    waits = {
        budget: wait
        for budget, current in windows.items()
        if (wait := current.retry_after(int(values.get(current.key) or 0) + 1)) is not None
    }
    if not waits:
        return None
    return Lock(
        max(waits.values()),
        address="address" in waits,
        client="client" in waits,
        known=bool(known and values.get(known)),
    )


def record_failure(remote_addr: str, client_id: str | None, locked: Lock | None = None) -> None:
    """Count a failed client authentication against its address and its client, exactly
    (failures are rare: one cache round trip each); under a lock, only against the
    budgets not yet used up."""
    for budget, current in _failure_windows(remote_addr, client_id).items():
        if locked is not None and locked.over(budget):
            continue
        try:
            cache.count(current.key, current.period + 1)
        except Exception as error:
            logger.warning("Failure not counted, cache unreachable: %r", error)


def record_success(remote_addr: str, client_id: str) -> None:
    """``client_id`` authenticated correctly from ``remote_addr``: the pair is known.

    Marked in the cache once per ``_KNOWN_REFRESH`` per process and pair (so at most one
    round trip every ten minutes, none on the requests between).
    """
    pair = (client_id, remote_addr)
    now = _monotonic()
    seen = _known.get(pair)
    if seen is not None and now - seen < _KNOWN_REFRESH:
        return
    if not settings.TOKEN_PORTAL.get("RATE_LIMITS", {}).get(FAILURES):
        return
    if len(_known) >= _MEMO_MAX:
        _known.clear()
    _known[pair] = now
    try:
        django_cache.set(_known_key(client_id, remote_addr), 1, KNOWN_SECONDS)
    except Exception as error:
        _known.pop(pair, None)  # tried again with the next success
        logger.warning("Known client address not recorded, cache unreachable: %r", error)


def forget() -> None:
    """Forget this process's uncounted requests and known client-address pairs, as a new
    process would (tests)."""
    with _tally_lock:
        _tally.clear()
    _known.clear()
