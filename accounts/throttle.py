"""Failure counters for login and two-factor codes, in the shared cache.

Request rates (every login POST per client address) use ``tokens.ratelimit``; these
count only *failures* per account, so a user who logs in fine never uses up a budget,
while guessing one account's password or codes stops at the limit whatever the number
of addresses used. They are counted in ``tokens.ratelimit``'s fixed windows, under the
``RATE_LIMITS`` entries of their scopes. A cache outage lets attempts through (logged):
it must not lock every administrator out.

An account is counted under one spelling of its name (``account_key``): every spelling
that the login form reads as the same user ("ａda", "𝖆𝖉𝖆", "ada") shares one budget.
"""

import hashlib
import logging
import unicodedata

from django.core.cache import cache

from tokens import ratelimit
from tokens.gateway import cache as counter

logger = logging.getLogger(__name__)


def account_key(who: str) -> str:
    """The one spelling of an account name that its failures count against.

    NFKC, as Django's login form and ``AbstractBaseUser.normalize_username`` read a
    username (so "ａda" and "𝖆𝖉𝖆" log in as "ada"), trimmed as the form trims it, and
    case-folded (then NFKC again: folding can leave a string that NFKC would change).
    """
    folded = unicodedata.normalize("NFKC", who).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


def _window(scope: str, who: str) -> ratelimit.Window | None:
    """``who``'s current window in ``scope`` (``tokens.ratelimit``'s fixed windows), counted
    under a digest of the account's one spelling; None when ``scope`` has no limit."""
    digest = hashlib.sha256(account_key(who).encode("utf-8", "surrogatepass")).hexdigest()
    return ratelimit.window(scope, f"account:{digest[:32]}")


def locked_for(scope: str, who: str) -> int | None:
    """Seconds until ``who`` may try again in ``scope``; None when not locked."""
    current = _window(scope, who)
    if current is None:
        return None
    try:
        failures = cache.get(current.key) or 0
    except Exception as error:
        logger.warning("Failure limit not applied, cache unreachable: %r", error)
        return None
    # Locked once the budget is used up: the next failure would be one too many.
    return current.retry_after(failures + 1)


def record_failure(scope: str, who: str) -> None:
    """Count one failure of ``who`` in ``scope``, exactly (failures are rare)."""
    current = _window(scope, who)
    if current is None:
        return
    try:
        counter.count(current.key, current.period + 1)
    except Exception as error:
        logger.warning("Failure not counted, cache unreachable: %r", error)


def clear_failures(scope: str, who: str) -> None:
    current = _window(scope, who)
    if current is None:
        return
    try:
        cache.delete(current.key)
    except Exception as error:
        logger.warning("Failures not cleared, cache unreachable: %r", error)
