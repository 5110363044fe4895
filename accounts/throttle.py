"""Failure counters for login and two-factor codes, in the shared cache.

Request rates (every login POST per client address) use ``tokens.ratelimit``; these
count only *failures* per account, so a user who logs in fine never uses up a budget,
while guessing one account's password or codes stops at the limit whatever the number
of addresses used. Limits are ``settings.TOKEN_PORTAL["RATE_LIMITS"]`` entries in the
same ``"N/s" | "N/m" | "N/h"`` form (fixed windows). A cache outage lets attempts
through (logged): it must not lock every administrator out.

An account is counted under one spelling of its name (``account_key``): every spelling
that the login form reads as the same user ("ａda", "𝖆𝖉𝖆", "ada") shares one budget.
"""

import hashlib
import logging
import math
import time
import unicodedata

from django.conf import settings
from django.core.cache import cache

from tokens.ratelimit import parse_limit

logger = logging.getLogger(__name__)


def account_key(who: str) -> str:
    """The one spelling of an account name that its failures count against.

    NFKC, as Django's login form and ``AbstractBaseUser.normalize_username`` read a
    username (so "ａda" and "𝖆𝖉𝖆" log in as "ada"), trimmed as the form trims it, and
    case-folded (then NFKC again: folding can leave a string that NFKC would change).
    """
    folded = unicodedata.normalize("NFKC", who).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


def _window(scope: str, who: str) -> tuple[str, int, float] | None:
    limit = settings.TOKEN_PORTAL.get("RATE_LIMITS", {}).get(scope)
    if not limit:
        return None
    allowed, period = parse_limit(limit)
    now = time.time()
    window = int(now // period)
    subject = hashlib.sha256(account_key(who).encode("utf-8", "surrogatepass")).hexdigest()
    key = f"rlf:{scope}:{window}:{subject[:32]}"
    retry = max(1, math.ceil((window + 1) * period - now))
    return key, allowed, retry


def locked_for(scope: str, who: str) -> int | None:
    """Seconds until ``who`` may try again in ``scope``; None when not locked."""
    window = _window(scope, who)
    if window is None:
        return None
    key, allowed, retry = window
    try:
        failures = cache.get(key) or 0
    except Exception as error:
        logger.warning("Failure limit not applied, cache unreachable: %r", error)
        return None
    return retry if failures >= allowed else None


def record_failure(scope: str, who: str) -> None:
    window = _window(scope, who)
    if window is None:
        return
    key, _, retry = window
    try:
        if not cache.add(key, 1, retry + 1):
            try:
                cache.incr(key)
            except ValueError:  # lapsed between add and incr
                cache.add(key, 1, retry + 1)
    except Exception as error:
        logger.warning("Failure not counted, cache unreachable: %r", error)


def clear_failures(scope: str, who: str) -> None:
    window = _window(scope, who)
    if window is None:
        return
    try:
        cache.delete(window[0])
    except Exception as error:
        logger.warning("Failures not cleared, cache unreachable: %r", error)
