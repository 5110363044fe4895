"""Bench-only cache backends for the "cold" figure: every token lookup misses.

Only the gateway's token answers (``gw:tok:…``) are never found nor stored; the API
index version, client records, rate-limit counters and "last used" keys work as in
production. So each check costs what a real miss costs: one cache round trip and the
database query.
"""

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from portal.cache.locmem import LocMemCache
from portal.cache.redis import RedisCache

_COLD = "gw:tok:"


class ColdTokensMixin:
    def get(self, key, default=None, version=None):
        if key.startswith(_COLD):
            return default
        return super().get(key, default, version)

    def get_many(self, keys, version=None):
        return super().get_many([key for key in keys if not key.startswith(_COLD)], version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        if key.startswith(_COLD):
            return True
        return super().add(key, value, timeout, version)


class ColdReadMixin(ColdTokensMixin):
    def read(self, keys, counter=None, keep_local=None):  # the lean readers (portal/*_cache.py)
        """A real miss: the token's key is asked for (one round trip with the others, and
        nothing kept in a process's local tier), and its answer thrown away."""
        values, counted = super().read(keys, counter)
        return {k: v for k, v in values.items() if not k.startswith(_COLD)}, counted


class ColdLocMemCache(ColdReadMixin, LocMemCache):
    pass


class ColdRedisCache(ColdReadMixin, RedisCache):
    pass
