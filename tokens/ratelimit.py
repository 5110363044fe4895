"""Fixed-window rate limits for the OAuth endpoints, counted in the Django cache.

With Redis as the cache the counters are shared by every app server, so a burst spread
over processes is counted once. Limits live in ``settings.TOKEN_PORTAL["RATE_LIMITS"]``
as ``{scope: "N/s" | "N/m" | "N/h"}``; a missing or empty limit means no limit.
"""

import collections
import functools
import logging
import math
import threading
import time
from typing import NamedTuple

from django.conf import settings

from . import cache

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


def window(scope: str, client: str) -> Window | None:
    """The window to count a request of ``client`` in ``scope``; None if it has no limit."""
    limit = settings.TOKEN_PORTAL.get("RATE_LIMITS", {}).get(scope)
    if not limit:
        return None
    allowed, period = parse_limit(limit)
    now = time.time()
    key = f"rl:{scope}:{int(now // period)}:{client}"
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
        entry = _tally.get(current.key)
        if entry is None:
            while len(_tally) >= _TALLY_MAX:
                _tally.popitem(last=False)
            entry = _tally[current.key] = [0, 0]
        entry[0] += 1
        if entry[0] < batch:
            return 0
        due, entry[0] = entry[0], 0
        return due


def untake(current: Window, due: int) -> None:
    """``due`` requests that could not be added to the shared counter: kept for the next
    batch."""
    if batch_size(current) == 1:
        return
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
