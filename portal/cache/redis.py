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
- **A local tier in front of Redis** (``LocalTier``, option ``LOCAL_TIER``): what
  ``read`` found under the gateway's keys is kept in the process and answered from
  there while the process can vouch that it has seen every purge. A write of such a
  key publishes a purge and returns only once every process has applied it; the
  class's docstring gives the protocol.
"""

import collections
import contextlib
import functools
import logging
import os
import re
import socket
import threading
import time

from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency (redis[hiredis])
    hiredis = None


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


def _encode(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


_INFO_SERVER = _encode("INFO", "server")
_INFO_REPLICATION = _encode("INFO", "replication")
_INFO_FIELD = re.compile(rb"^(\w+):(\S*)\r?$", re.MULTILINE)
_epoch_problems_logged: set = set()


def server_epoch(server, replication) -> bytes | None:
    """The lifetime of a Redis server, from its ``INFO server`` and ``INFO replication``
    replies: its ``run_id``, new at every start (from whatever snapshot) and different on
    every other server; None (logged once) when Redis will not tell it, or is not a
    primary: nothing of the gateway's is then kept in it. (Not the replication id: that
    changes without dropping connections, so processes would disagree on it.)"""
    fields = {}
    for reply in (server, replication):
        if isinstance(reply, bytes):
            fields.update(_INFO_FIELD.findall(reply))
    run_id, role = fields.get(b"run_id"), fields.get(b"role")
    problem = None
    if not run_id or not role:
        refused = next((r for r in (server, replication) if isinstance(r, Exception)), None)
        problem = f"Redis does not tell its run_id and role ({refused or 'not in INFO'})"
    elif role != b"master":
        problem = f"Redis at REDIS_URL is a {role.decode(errors='replace')}, not a primary"
    if problem is not None:
        if problem not in _epoch_problems_logged:
            _epoch_problems_logged.add(problem)
            logger.error("%s: gateway answers are not cached in it (see docs/gateway.md).", problem)
        return None
    return run_id


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
        self.local.epoch = server_epoch(
            *self._roundtrip([_INFO_SERVER, _INFO_REPLICATION], errors=True)
        )
        self.local.pid = os.getpid()

    def _roundtrip(self, commands: list[bytes], *, errors: bool = False) -> list:
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
            if isinstance(reply, Exception) and not errors:
                raise reply
            replies.append(reply)
        return replies

    def execute(self, commands, *, errors: bool = False) -> list:
        """The replies to ``commands``, sent together; with ``errors``, a command's error
        is its reply (every reply read, the connection kept), else it is raised.

        ``commands`` may be a function of the connection's server's ``server_epoch``
        (bytes, or None when Redis would not tell it, or is no primary) that returns
        them: what it sends then names the very server, and its time as primary, that
        answers it (``_tied``).
        """
        for attempt in (1, 2):
            reused = getattr(self.local, "pid", None) == os.getpid()
            try:
                if not reused:  # first use, or a forked child
                    self._connect()
                if callable(commands):
                    return self._roundtrip(commands(self.local.epoch), errors=errors)
                return self._roundtrip(commands, errors=errors)
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
        self.local.epoch = None
        self.local.sock = None
        if sock is not None:
            sock.close()


class LocalTier:
    """Entries read from Redis, kept in this process and trusted only while it can prove
    it has applied every purge published before the last moment it checked.

    **Listener.** A thread keeps a connection of its own SUBSCRIBEd to the purge
    channel and sends a PING on it every ``ping`` seconds. Redis answers commands and
    delivers messages on one connection in order, so when the answer to a PING sent at
    ``t`` arrives, every purge published before ``t`` has been received, and applied
    (a purge drops every entry). The thread then trusts the entries until
    ``t + trust``. Any error, or no answer, and the trust lapses; a new subscription
    starts with no entries.

    **Writers.** Every write of such a key (``RedisCache.set``, ``delete``, … ``clear``),
    in any process, tier or not, drops this process's entries, publishes a purge on the
    same connection as the write, and returns ``settle`` seconds after Redis took the
    publish, ``settle`` > ``trust``. A check starting after that
    uses an entry only under trust from a PING sent after the publish, which Redis
    answered after delivering the purge. Each side measures only its own durations: no
    clock is compared with another machine's.

    **Filling.** An entry read from Redis goes into the dict that was current *before*
    the read: a purge in between replaces the dict, and the late entry lands in the old
    one, which nobody reads any more. Reads take the trust first, then the dict. A copy
    lives ``seconds`` at most, and never longer than its entry in Redis (PTTL).

    One tier per process and Redis channel (``shared``), whatever the threads.
    """

    def __init__(self, lean, channel: bytes, *, prefixes, seconds, trust, settle, ping):
        if not ping < trust < settle:
            raise ValueError("LOCAL_TIER needs ping < trust < settle.")
        self.lean, self.channel, self.prefixes = lean, channel, tuple(prefixes)
        self.seconds, self.trust, self.settle, self.ping = seconds, trust, settle, ping
        self.entries: dict = {}
        self.trusted_until = 0.0
        self.max_entries = 100_000
        self._pid = self._listener = None
        self._subscribed = False
        self._start_lock = threading.Lock()

    _shared: dict = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, lean, channel: bytes, **options) -> "LocalTier":
        """The process's one tier for this Redis and channel: Django makes a cache backend
        per thread, and each would otherwise keep its own copy and listener."""
        key = (lean.address, tuple(lean.setup), channel, tuple(sorted(options.items())))
        with cls._shared_lock:
            tier = cls._shared.get(key)
            if tier is None:
                tier = cls._shared[key] = cls(lean, channel, **options)
            return tier

    def keeps(self, key: str) -> bool:
        return key.startswith(self.prefixes)

    def start(self) -> None:
        """Start the listener of this process (again after a fork: threads do not follow)."""
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.entries, self.trusted_until = {}, 0.0
            self._listener = token = object()
            listener = threading.Thread(
                target=self._run, args=(token,), name="cache-purges", daemon=True
            )
            listener.start()

    def stop(self) -> None:
        """Stop trusting, and the listener (at its next wake-up); ``start`` starts anew."""
        self._listener = self._pid = None
        self.trusted_until = 0.0
        self.drop()

    def drop(self) -> None:
        self.entries = {}

    def _run(self, token) -> None:
        pause, last = 0.2, None
        while self._listener is token:
            try:
                self._listen(token)
            except Exception as error:  # any: the trust lapses, then a new subscription
                if repr(error) != last:  # each new kind of failure once, not every retry
                    last = repr(error)
                    logger.warning("Cache purge listener: %r; no local answers meanwhile", error)
            if self._listener is not token:
                return  # stopped: the trust belongs to the listener that replaced this one
            self.trusted_until = 0.0
            self.drop()
            time.sleep(pause)
            pause = 0.2 if self._subscribed else min(5.0, pause * 2)

    def _listen(self, token) -> None:
        sock = socket.create_connection(self.lean.address, timeout=self.lean.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = hiredis.Reader()
            # AUTH, SELECT (harmless: channels span databases), a name for CLIENT LIST.
            setup = [*self.lean.setup, _encode("CLIENT", "SETNAME", f"tp-purges-{os.getpid()}")]
            self._subscribed = False
            sock.sendall(b"".join([*setup, _encode("SUBSCRIBE", self.channel)]))
            sock.settimeout(self.lean.timeout or 1.0)
            for index in range(len(setup) + 1):  # their OKs, then the subscription's
                reply = _next_reply(sock, reader)
                if isinstance(reply, Exception) and index != len(setup) - 1:
                    raise reply  # (a user without +client may not name its connection)
            self._subscribed = True
            self.drop()  # purges before the subscription were not seen
            pings: collections.deque = collections.deque()
            next_ping = 0.0
            while self._listener is token:
                now = time.monotonic()
                if now >= next_ping:
                    sock.sendall(_PING)
                    pings.append(now)
                    next_ping = now + self.ping
                if pings and now - pings[0] > 1.0:
                    raise TimeoutError("no answer to a PING in 1 s")
                sock.settimeout(max(0.001, next_ping - time.monotonic()))
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    raise ConnectionError("Redis closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    kind = reply[0] if isinstance(reply, list) else reply
                    if kind == b"message":
                        self.drop()
                    elif kind == b"pong" and self._listener is token:
                        self.trusted_until = pings.popleft() + self.trust
                    elif isinstance(reply, Exception):
                        raise reply
        finally:
            sock.close()

    def get(self, keys: list[str]) -> tuple[dict, dict]:
        """``(found, entries)``: what the tier holds of ``keys`` (nothing unless trusted),
        and the dict to fill with what Redis answers for the rest."""
        self.start()
        trusted = time.monotonic() < self.trusted_until  # the trust first, then the dict
        entries = self.entries
        found = {}
        if trusted:
            now = time.monotonic()
            for key in keys:
                entry = entries.get(key)
                if entry is not None and entry[1] > now:
                    found[key] = entry[0]
        return found, entries

    def fill(self, entries: dict, values: dict, ttls: dict) -> None:
        """Keep ``values`` in ``entries`` for ``seconds``, or less: until their entry in
        Redis would lapse (``ttls``: PTTL's answers, milliseconds; -1: no expiry)."""
        if len(entries) > self.max_entries:
            entries.clear()
        now = time.monotonic()
        for key, value in values.items():
            ttl = ttls.get(key, -2)
            if ttl == -2 or ttl == 0:  # gone meanwhile
                continue
            lifetime = self.seconds if ttl < 0 else min(self.seconds, ttl / 1000)
            entries[key] = (value, now + lifetime)


_PING = b"*1\r\n$4\r\nPING\r\n"
_settling = threading.local()
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


def _next_reply(sock, reader):
    while (reply := reader.gets()) is False:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("Redis closed the connection")
        reader.feed(data)
    return reply


@contextlib.contextmanager
def settle_once():
    """Within this block, writes that publish a purge do not wait each; the block's end
    waits once, until the last of them has settled (a request revoking many tokens)."""
    if getattr(_settling, "deadline", None) is not None:  # nested: the outer block waits
        yield
        return
    _settling.deadline = 0.0
    try:
        yield
    finally:
        deadline, _settling.deadline = _settling.deadline, None
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def _settle(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    if getattr(_settling, "deadline", None) is not None:
        _settling.deadline = max(_settling.deadline, deadline)
    else:
        time.sleep(seconds)


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        options = dict(params.get("OPTIONS") or {})
        local = dict(options.pop("LOCAL_TIER", None) or {})
        super().__init__(server, {**params, "OPTIONS": options})
        self._class = RedisCacheClient  # Django sets its own in __init__
        self._lean = LeanRedis.for_servers(self._servers, self._options)
        # Writes of the gateway's keys are published whether or not this process keeps a
        # tier of its own: others may.
        self._purges = None  # (prefixes, channel, settle)
        self._tier = None
        if local:
            keep = local.pop("keep", True)
            channel = self.make_key("purges").encode()
            self._purges = (tuple(local["prefixes"]), channel, local["settle"])
            self._shadow_seconds = local.pop("shadow", local["seconds"] + 5)
            if keep and self._lean is not None:
                self._tier = LocalTier.shared(self._lean, channel, **local)

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

        if self._lean is not None:
            replies = self._lean.execute(commands, errors=True)
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
        if self._lean is None:
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

        replies = self._lean.execute(commands)
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
        if self._lean is not None:
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
        if self._lean is None:
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

        replies = self._lean.execute(with_reads)
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

    def server_problems(self) -> list[str]:
        """What in this Redis would let a revoke be undone (``portal.deployment``): no
        ``run_id`` to tie the gateway's entries to, or an eviction policy that may drop a
        purge marker early. Raises if Redis cannot be reached."""
        if self._purges is None:
            return []
        if self._lean is None:
            return [
                "REDIS_URL names TLS, a Unix socket or several servers: the portal cannot tie "
                "gateway entries to the Redis primary's lifetime there, so it keeps none in Redis "
                "(every gateway check not answered locally asks the database)."
            ]
        server, replication, memory = self._lean.execute(
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
        if self._lean is None:
            return self.add(key, 1, timeout)
        value = self._cache._serializer.dumps(1)
        command = _encode("SET", self.make_key(key), value, "EX", max(1, int(timeout)), "NX")
        return self._lean.execute([command])[0] is not None

    def _increment(self, key: str, timeout: int, amount: int = 1) -> int:
        self.add(key, 0, timeout)
        return self.incr(key, amount)
