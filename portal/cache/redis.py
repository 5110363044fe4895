"""Django's Redis cache backend, made cheap enough for a gateway check on every API request.

(The lean client is ``portal.cache.resp``, the local tier ``portal.cache.tier``.)

Two changes to Django's backend, both measured with ``bench.cpu`` (bench/RESULTS.md):

- **One client object per connection pool.** Django's ``RedisCacheClient.get_client``
  builds a new ``redis.Redis`` for every cache operation; with redis-py 8 that
  constructor fills a table of ~170 response callbacks, more than a round trip costs.
  A ``redis.Redis`` is safe to share between threads, so one per pool is kept.
- **A lean reader for the hot path** (``read``): the gateway's reads, and the rate-limit
  counter that introspection bumps with them, go to Redis in **one** round trip over a
  plain socket per process and thread, parsed by hiredis. redis-py spends more CPU on a
  command (connection pool, retries, observability hooks) than Redis does answering it.
  Keys and values are exactly Django's (``make_key``, Django's serializer), so both
  paths read and write the same entries. Where the lean reader cannot be used (TLS,
  Unix sockets, several servers, no hiredis), ``read`` falls back to Django's calls.
- **A local tier in front of Redis** (``LocalTier``, option ``LOCAL_TIER``): what
  ``read`` found under the gateway's keys is kept in the process and answered from
  there while the process can vouch that it has seen every purge. A write of such a
  key publishes a purge and returns only once every process has applied it; the
  class's docstring gives the protocol.
"""

import functools
import logging

from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from portal.cache.redispy import RedisPyClient
from portal.cache.resp import (
    _INFO_FIELD,
    _INFO_REPLICATION,
    _INFO_SERVER,
    RespClient,
    _encode,
    server_epoch,
)
from portal.cache.tier import LocalTier, _settle

logger = logging.getLogger(__name__)


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


def _tied(made: str, epoch: bytes) -> bytes:
    """A gateway key as kept in one server's lifetime (``server_epoch``): it changes
    whenever Redis restarts (from whatever snapshot) and differs on every other server
    (a failover), so no entry written before a loss of Redis state, or on another
    server, is ever read again. (A failback to a server that was not restarted is what
    ``_shadow`` covers.)"""
    return made.encode() + b"@" + epoch


def _shadow(made: str) -> bytes:
    """The same key in every server's lifetime: each *write* of a gateway key (a purge
    marker, a catalogue version; never a check's fill, which is ``add``) goes there too,
    living at least ``shadow`` seconds, and a shadow, when there is one, is what a read
    answers. An old primary that takes over again without a restart still holds its
    entries of before, under its unchanged ``run_id``; the purges made meanwhile, on the
    other server, reached it as shadows (replication), and outlive those entries."""
    return made.encode() + b"@*"


_refused: set = set()


def _refused_once(channel: bytes, error: Exception) -> None:
    if channel not in _refused:
        _refused.add(channel)
        logger.error(
            "Redis refuses PUBLISH on %s (%s): a change of a token, app or API cannot reach "
            "the other processes' local copies, so every such change is reported as not yet "
            "effective; allow the portal's Redis user PUBLISH on that channel.",
            channel.decode(),
            error,
        )


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        options = dict(params.get("OPTIONS") or {})
        local = dict(options.pop("LOCAL_TIER", None) or {})
        super().__init__(server, {**params, "OPTIONS": options})
        self._class = RedisCacheClient  # Django sets its own in __init__
        # Not a redis-py connection option: taken out before Django hands them over.
        client = self._options.pop("REDIS_CLIENT", "resp")
        self._resp = RespClient.for_servers(self._servers, self._options)
        if client == "redis-py" and self._resp is not None:  # a measurement switch
            self._resp = RedisPyClient(self._resp)  # (bench/RESULTS.md, session 5)
        # Writes of the gateway's keys are published whether or not this process keeps a
        # tier of its own: others may.
        self._purges = None  # (prefixes, channel, settle)
        self._tier = None
        if local:
            keep = local.pop("keep", True)
            channel = self.make_key("purges").encode()
            self._purges = (tuple(local["prefixes"]), channel, local["settle"])
            self._shadow_seconds = local.pop("shadow", local["seconds"] + 5)
            if keep and self._resp is not None:
                self._tier = LocalTier.shared(self._resp, channel, **local)

    # Every change of a key the local tiers may hold is published, whoever makes it, on
    # the same connection as the change itself (so both reach the same Redis).

    def _published(self, key) -> bool:
        return self._purges is not None and key.startswith(self._purges[0])

    def _write_everywhere(self, writes) -> list:
        """Run ``writes(made_key)`` (writes of the gateway's keys: command tuples naming
        their key through ``made_key``, which ties it to the server's lifetime), then
        publish a purge; return their replies once every process's tier has dropped its
        entries. Without an epoch nothing is written (nothing is read either), but
        the purge is still published."""
        _, channel, settle = self._purges
        if self._tier is not None:
            self._tier.drop()  # this process at once; the others through the channel
        publish = ("PUBLISH", channel, b"purge")  # any message: all drop

        def commands(server_epoch):
            if server_epoch is None:
                return [_encode(*publish)]
            made_key = functools.partial(_tied, epoch=server_epoch)
            return [_encode(*command) for command in (*writes(made_key), publish)]

        if self._resp is not None:
            replies = self._resp.execute(commands, errors=True)
        else:  # no lean client, no epoch: nothing of the gateway's is kept in Redis
            pipeline = self._cache.get_client(write=True).pipeline(transaction=False)
            pipeline.execute_command(*publish)
            replies = pipeline.execute(raise_on_error=False)
        *written, published = replies
        for reply in written:
            if isinstance(reply, Exception):
                raise reply
        if isinstance(published, Exception):
            # Processes that may SUBSCRIBE would keep their copies: the write is not done.
            _refused_once(channel, published)
            raise published
        if self._tier is not None or published:  # some process may keep a tier
            _settle(settle)
        return written

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        if not self._published(key):
            return super().set(key, value, timeout, version)
        made = self.make_and_validate_key(key, version=version)
        seconds = self.get_backend_timeout(timeout)  # None: no expiry; 0: gone at once
        if seconds is not None and seconds <= 0:
            self._write_everywhere(lambda tied: [("DEL", tied(made)), ("DEL", _shadow(made))])
            return None
        data = self._cache._serializer.dumps(value)
        expiry = shadow_expiry = ()
        if seconds is not None:
            expiry = ("PX", max(1, int(seconds * 1000)))
            shadow_expiry = ("PX", max(1, int(max(seconds, self._shadow_seconds) * 1000)))
        self._write_everywhere(
            lambda tied: [
                ("SET", tied(made), data, *expiry),
                ("SET", _shadow(made), data, *shadow_expiry),
            ]
        )
        return None

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        """Django's ``add``; for the gateway's keys, in this server's lifetime only (no
        purge to publish: no tier holds a key that Redis does not)."""
        if not self._published(key):
            return super().add(key, value, timeout, version)
        if self._resp is None:
            return False
        made = self.make_and_validate_key(key, version=version)
        seconds = self.get_backend_timeout(timeout)
        if seconds is not None and seconds <= 0:
            return False
        data = self._cache._serializer.dumps(value)
        expiry = () if seconds is None else ("PX", max(1, int(seconds * 1000)))

        def commands(server_epoch):
            if server_epoch is None:
                return []
            return [_encode("SET", _tied(made, server_epoch), data, "NX", *expiry)]

        replies = self._resp.execute(commands)
        return bool(replies) and replies[0] is not None

    def get(self, key, default=None, version=None):
        if not self._published(key) or version is not None:
            return super().get(key, default, version)
        return self.read([key])[0].get(key, default)

    def get_many(self, keys, version=None):
        keys = list(keys)
        tied = [key for key in keys if self._published(key)]
        if not tied or version is not None:
            return super().get_many(keys, version)
        others = [key for key in keys if not self._published(key)]
        values = super().get_many(others) if others else {}
        if self._resp is not None:
            values.update(self.read(tied)[0])
        return values

    def has_key(self, key, version=None):
        if not self._published(key) or version is not None:
            return super().has_key(key, version)
        return key in self.get_many([key])

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        if not any(self._published(key) for key in data):
            return super().set_many(data, timeout, version)
        for key, value in data.items():
            self.set(key, value, timeout, version)
        return []

    def delete(self, key, version=None):
        if not self._published(key):
            return super().delete(key, version)
        made = self.make_and_validate_key(key, version=version)
        written = self._write_everywhere(lambda tied: [("DEL", tied(made)), ("DEL", _shadow(made))])
        return bool(written and (written[0] or written[1]))

    def delete_many(self, keys, version=None):
        keys = list(keys)
        if not any(self._published(key) for key in keys):
            return super().delete_many(keys, version)
        for key in keys:
            self.delete(key, version)

    def clear(self):
        super().clear()
        if self._purges is not None:
            self._write_everywhere(lambda tied: [])

    def read(self, keys: list[str], counter: tuple[str, int] | None = None, keep_local=None):
        """``(get_many(keys), count)`` in one round trip, or none.

        ``counter`` is ``(key, timeout[, amount])``: ``amount`` (1) is added to that
        counter (created with the timeout if absent, in one MULTI) and its new value
        returned as ``count``; else ``count`` is None. With a local tier, keys it holds
        are answered from it, and values read from Redis for which ``keep_local(value)``
        is true are kept in it.
        """
        if self._resp is None:
            values = self.get_many(keys) if keys else {}  # the gateway's: none (no epoch)
            return values, None if counter is None else self._increment(*counter)
        local, entries = {}, None
        tier = self._tier
        if tier is not None and keys:
            local, entries = tier.get(keys)
            if local:
                keys = [key for key in keys if key not in local]
                if not keys and counter is None:
                    return local, None
        commands = []
        if counter is not None:  # created with its timeout and counted, atomically
            counter_key = self.make_key(counter[0])
            timeout = max(1, int(counter[1]))
            amount = counter[2] if len(counter) > 2 else 1
            commands.append(_encode("MULTI"))
            commands.append(_encode("SET", counter_key, 0, "EX", timeout, "NX"))
            commands.append(_encode("INCRBY", counter_key, amount))
            commands.append(_encode("EXEC"))
        filling = entries is not None and keep_local is not None
        made = [self.make_key(key) for key in keys]
        tied = [self._published(key) for key in keys]

        def with_reads(server_epoch):
            # The gateway's keys as written in this server's lifetime (never any other's;
            # without a run_id a name nothing writes: they read as missing), each with its
            # shadow, which answers first when there is one (``_shadow``).
            epoch = server_epoch or b"-"
            names = []
            for name, is_tied in zip(made, tied, strict=True):
                names.extend((_tied(name, epoch), _shadow(name)) if is_tied else (name,))
            reads = [_encode("MGET", *names)] if keys else []
            if filling:  # a local copy lives no longer than the entry in Redis
                reads.extend(_encode("PTTL", name) for name in names)
            return [*commands, *reads]

        replies = self._resp.execute(with_reads)
        values = {}
        if keys:
            width = len(keys) + sum(tied)
            mget = replies[-1 - width] if filling else replies[-1]
            loads = self._cache._serializer.loads
            ttls, position = {}, 0
            for key, is_tied in zip(keys, tied, strict=True):
                pick = position + 1 if is_tied and mget[position + 1] is not None else position
                if mget[pick] is not None:
                    values[key] = loads(mget[pick])
                    if filling:
                        ttls[key] = replies[-width + pick]
                position += 2 if is_tied else 1
            if filling:
                tier.fill(
                    entries,
                    {k: v for k, v in values.items() if tier.keeps(k) and keep_local(v)},
                    ttls,
                )
        if local:
            values.update(local)
        return values, None if counter is None else replies[3][1]

    def server_epoch(self) -> bytes | None:
        """The lifetime of the server this thread's connection reaches (``resp``)."""
        return None if self._resp is None else getattr(self._resp.local, "epoch", None)

    def server_problems(self) -> list[str]:
        """What in this Redis would let a revoke be undone (``portal.deployment``): no
        ``run_id`` to tie the gateway's entries to, or an eviction policy that may drop a
        purge marker early. Raises if Redis cannot be reached."""
        if self._purges is None:
            return []
        if self._resp is None:
            return [
                "REDIS_URL names TLS, a Unix socket or several servers: the portal cannot tie "
                "gateway entries to the Redis primary's lifetime there, so it keeps none in Redis "
                "(every gateway check not answered locally asks the database)."
            ]
        server, replication, memory = self._resp.execute(
            [_INFO_SERVER, _INFO_REPLICATION, _encode("INFO", "memory")], errors=True
        )
        problems = []
        if server_epoch(server, replication) is None:
            problems.append(
                "Redis does not tell the portal's user its run_id and replication id (INFO), "
                "or is not a primary: gateway answers are not cached in Redis."
            )
        fields = dict(_INFO_FIELD.findall(memory)) if isinstance(memory, bytes) else {}
        policy = fields.get(b"maxmemory_policy", b"noeviction").decode()
        if fields.get(b"maxmemory", b"0") != b"0" and policy != "noeviction":
            problems.append(
                f"Redis evicts keys when full (maxmemory-policy {policy}): an evicted purge "
                "marker would let a check re-cache a token revoked a moment before. Use "
                "maxmemory-policy noeviction (or no maxmemory) for the portal's Redis."
            )
        return problems

    def mark(self, key: str, timeout: int) -> bool:
        """``add(key, 1, timeout)`` in one lean round trip: whether the key was absent."""
        if self._resp is None:
            return self.add(key, 1, timeout)
        value = self._cache._serializer.dumps(1)
        command = _encode("SET", self.make_key(key), value, "EX", max(1, int(timeout)), "NX")
        return self._resp.execute([command])[0] is not None

    def _increment(self, key: str, timeout: int, amount: int = 1) -> int:
        self.add(key, 0, timeout)
        return self.incr(key, amount)
