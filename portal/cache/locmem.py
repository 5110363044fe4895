"""Django's local-memory cache, plus the lean ``read`` of ``portal.cache.redis.RedisCache``.

Without Redis, every gateway check reads its answers from this cache, and every
introspection also counts against its rate limit here. Through Django's API that is
three calls (``incr``, maybe ``add``, ``get_many``): each takes the lock again and
validates each key for memcached (a Python loop over its characters), and the reads
came to about a seventh of an introspection's time in its gunicorn worker
(bench/RESULTS.md). ``read`` counts and reads under one lock, with the same semantics.
Its keys are the gateway's own (``tokens.gateway.cache``): fixed ASCII, nothing to validate.
"""

import pickle  # noqa: S403 - this process's own entries, as Django's locmem reads them

from django.core.cache.backends import locmem


class LocMemCache(locmem.LocMemCache):
    def read(self, keys: list[str], counter: tuple[str, int] | None = None, keep_local=None):
        """``(get_many(keys), count)``, as ``RedisCache.read`` answers (its values shared
        between reads, as the Redis tier's are).

        ``counter`` is ``(key, timeout[, amount])``: that counter is created with the
        timeout if absent, ``amount`` (1) is added, and its new value returned as
        ``count``; else ``count`` is None. (``keep_local`` is for Redis's local tier:
        this cache is local already.)
        """
        made = [(key, self.make_key(key)) for key in keys]
        counted = None
        found = {}
        with self._lock:
            if counter is not None:
                key = self.make_key(counter[0])
                amount = counter[2] if len(counter) > 2 else 1
                if self._has_expired(key):
                    counted = amount
                    self._set(key, pickle.dumps(counted, self.pickle_protocol), counter[1])
                else:  # as incr(): the expiry stays
                    counted = pickle.loads(self._cache[key]) + amount  # noqa: S301
                    self._cache[key] = pickle.dumps(counted, self.pickle_protocol)
                    self._cache.move_to_end(key, last=False)
            for key, made_key in made:
                if self._has_expired(made_key):
                    self._delete(made_key)
                    continue
                found[key] = self._cache[made_key]
                self._cache.move_to_end(made_key, last=False)
        return {key: self._decoded(key, pickled) for key, pickled in found.items()}, counted

    def _decoded(self, key: str, pickled: bytes):
        """The value stored as ``pickled``, unpickled once for as long as it stays stored:
        ``read``'s callers share it and must not change it (the gateway's are tuples)."""
        memo = self.__dict__.setdefault("_memo", {})
        kept = memo.get(key)
        if kept is not None and kept[0] is pickled:
            return kept[1]
        if len(memo) >= self._max_entries:
            memo.clear()
        value = pickle.loads(pickled)  # noqa: S301
        memo[key] = (pickled, value)
        return value

    def mark(self, key: str, timeout: int) -> bool:
        """``add(key, 1, timeout)``, as ``RedisCache.mark``: whether the key was absent."""
        return self.add(key, 1, timeout)
