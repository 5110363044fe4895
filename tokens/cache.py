"""The gateway-check cache: keys and purging.

Gateway checks may be answered from the cache (local memory, or Redis shared by every
app server). Any change to a token purges its entry after the change commits and before
the changing request returns, so no cache keeps accepting a revoked token.
"""

from django.core.cache import cache


def token_cache_key(digest: str) -> str:
    return f"gw:tok:{digest}"


def purge_token(digest: str) -> None:
    cache.delete(token_cache_key(digest))
