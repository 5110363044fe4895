"""Fixed-window rate limits for the OAuth endpoints, counted in the Django cache.

With Redis as the cache the counters are shared by every app server, so a burst spread
over processes is counted once. Limits live in ``settings.TOKEN_PORTAL["RATE_LIMITS"]``
as ``{scope: "N/s" | "N/m" | "N/h"}``; a missing or empty limit means no limit.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600}


def parse_limit(limit: str) -> tuple[int, int]:
    """``"60/m"`` → (60, 60): at most that many requests per that many seconds."""
    count, _, period = limit.partition("/")
    return int(count), _PERIODS[period.strip().lower()[:1]]


def retry_after(scope: str, client: str) -> int | None:
    """Count one request of ``client`` against ``scope``.

    Returns None when it is within the limit, else the seconds to wait (for
    ``Retry-After``). A cache outage lets requests through: it must not take the
    endpoints down with it.
    """
    limit = settings.TOKEN_PORTAL.get("RATE_LIMITS", {}).get(scope)
    if not limit:
        return None
    allowed, period = parse_limit(limit)
    now = time.time()
    window = int(now // period)
    key = f"rl:{scope}:{window}:{client}"
    try:
        try:
            count = cache.incr(key)  # one round trip for all but a window's first request
        except ValueError:  # no counter yet in this window (or another request's, just now)
            count = 1 if cache.add(key, 1, period + 1) else cache.incr(key)
    except Exception as error:
        logger.warning("Rate limit not applied, cache unreachable: %r", error)
        return None
    if count <= allowed:
        return None
    return max(1, math.ceil((window + 1) * period - now))
