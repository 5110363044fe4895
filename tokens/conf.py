"""The portal's own settings (``settings.TOKEN_PORTAL``), each with its default, read in
one place. portal/settings.py fills them from the environment (the README lists them);
tests override ``settings.TOKEN_PORTAL`` as a whole or in part, and this sees it."""

from django.conf import settings

DEFAULTS = {
    "SECRET_SCANNING_KEYS": "",
    "OAUTH_TOKEN_LIFETIME": 3600,
    "GATEWAY_CACHE_SECONDS": 60,
    "LAST_USED_RESOLUTION": 60,
    "CLIENT_CACHE_SECONDS": 30,
    "REQUIRE_MFA": False,
    "TRUSTED_PROXY_COUNT": 0,
    "TRUSTED_URI_HEADER": "",
    "RATE_LIMITS": {},
    "BULK_REVOKE_INLINE_LIMIT": 300,
    "JOB_BATCH_SIZE": 500,
    "JOB_BATCH_PAUSE": 0.0,
    "JOB_STALL_SECONDS": 60,
}


def setting(name: str):
    """``TOKEN_PORTAL[name]``, or its default."""
    return getattr(settings, "TOKEN_PORTAL", {}).get(name, DEFAULTS[name])


def rate_limit(scope: str) -> str | None:
    """The limit of ``scope`` ("N/s", "N/m", "N/h"); None or empty: no limit."""
    return setting("RATE_LIMITS").get(scope)
