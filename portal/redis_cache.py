"""Django's Redis cache backend, made cheap enough for a gateway check on every API request.

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
"""

import os
import socket
import threading

from django.core.cache.backends import redis as django_redis

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency (redis[hiredis])
    hiredis = None


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


def _encode(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class LeanRedis:
    """Pipelined commands over one socket per process and thread (RESP2, hiredis).

    Any failure closes the socket and raises: the caller treats it as the cache being
    unreachable, and the next call connects again.
    """

    def __init__(self, host: str, port: int, db: int, username, password, timeout, connect_timeout):
        self.address = (host, port)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.setup = []
        if password is not None:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            self.setup.append(_encode(*auth))
        if db:
            self.setup.append(_encode("SELECT", db))
        self.local = threading.local()

    @classmethod
    def for_servers(cls, servers: list[str], options: dict) -> "LeanRedis | None":
        from redis.connection import parse_url

        if hiredis is None or len(servers) != 1:
            return None
        params = parse_url(servers[0])
        if "connection_class" in params or "path" in params:  # TLS or a Unix socket
            return None
        return cls(
            params.get("host", "localhost"),
            int(params.get("port", 6379)),
            int(params.get("db", 0) or 0),
            params.get("username"),
            params.get("password"),
            options.get("socket_timeout"),
            options.get("socket_connect_timeout"),
        )

    def _connect(self):
        self.close()
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        self.local.sock, self.local.reader = sock, hiredis.Reader()
        if self.setup:
            self._roundtrip(self.setup)  # AUTH, SELECT: the socket is used only once they pass
        self.local.pid = os.getpid()

    def _roundtrip(self, commands: list[bytes]) -> list:
        local = self.local
        local.sock.sendall(b"".join(commands))
        replies = []
        while len(replies) < len(commands):
            reply = local.reader.gets()
            if reply is False:
                data = local.sock.recv(65536)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                local.reader.feed(data)
                continue
            if isinstance(reply, Exception):
                raise reply
            replies.append(reply)
        return replies

    def execute(self, commands: list[bytes]) -> list:
        for attempt in (1, 2):
            reused = getattr(self.local, "pid", None) == os.getpid()
            try:
                if not reused:  # first use, or a forked child
                    self._connect()
                return self._roundtrip(commands)
            except (ConnectionError, EOFError) as error:
                self.close()
                # A kept socket that Redis closed meanwhile (restart, idle timeout): one
                # more try on a new one. (A timeout is not retried: Redis may have acted.)
                if not (reused and attempt == 1):
                    raise error
            except BaseException:
                # Also after a timeout: a late reply must never be read as the next one's.
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        sock = getattr(self.local, "sock", None)
        self.local.pid = None
        self.local.sock = None
        if sock is not None:
            sock.close()


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient  # Django sets its own in __init__
        self._lean = LeanRedis.for_servers(self._servers, self._options)

    def read(self, keys: list[str], counter: tuple[str, int] | None = None):
        """``(get_many(keys), count)`` in one round trip.

        ``counter`` is ``(key, timeout)``: that counter is incremented (created with the
        timeout if absent, in one MULTI) and its new value returned as ``count``; else
        ``count`` is None.
        """
        if self._lean is None:
            values = self.get_many(keys) if keys else {}
            return values, None if counter is None else self._increment(*counter)
        commands = []
        if counter is not None:  # created with its timeout and counted, atomically
            counter_key = self.make_key(counter[0])
            timeout = max(1, int(counter[1]))
            commands.append(_encode("MULTI"))
            commands.append(_encode("SET", counter_key, 0, "EX", timeout, "NX"))
            commands.append(_encode("INCR", counter_key))
            commands.append(_encode("EXEC"))
        if keys:
            commands.append(_encode("MGET", *(self.make_key(key) for key in keys)))
        replies = self._lean.execute(commands)
        values = {}
        if keys:
            loads = self._cache._serializer.loads
            found = zip(keys, replies[-1], strict=True)
            values = {key: loads(data) for key, data in found if data is not None}
        return values, None if counter is None else replies[3][1]

    def mark(self, key: str, timeout: int) -> bool:
        """``add(key, 1, timeout)`` in one lean round trip: whether the key was absent."""
        if self._lean is None:
            return self.add(key, 1, timeout)
        value = self._cache._serializer.dumps(1)
        command = _encode("SET", self.make_key(key), value, "EX", max(1, int(timeout)), "NX")
        return self._lean.execute([command])[0] is not None

    def _increment(self, key: str, timeout: int) -> int:
        self.add(key, 0, timeout)
        return self.incr(key)
