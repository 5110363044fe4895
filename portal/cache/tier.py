"""The local tier: entries read from Redis, kept in this process while it can prove it
has applied every purge published before (the class's docstring gives the protocol),
and ``settle_once``: a request that purges many keys waits once for them all."""

import collections
import contextlib
import logging
import os
import socket
import threading
import time

from portal.cache.resp import _PING, _encode, _next_reply, hiredis

logger = logging.getLogger(__name__)


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
        self.resp, self.channel, self.prefixes = lean, channel, tuple(prefixes)
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
        sock = socket.create_connection(self.resp.address, timeout=self.resp.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = hiredis.Reader()
            # AUTH, SELECT (harmless: channels span databases), a name for CLIENT LIST.
            setup = [*self.resp.setup, _encode("CLIENT", "SETNAME", f"tp-purges-{os.getpid()}")]
            self._subscribed = False
            sock.sendall(b"".join([*setup, _encode("SUBSCRIBE", self.channel)]))
            sock.settimeout(self.resp.timeout or 1.0)
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


_settling = threading.local()


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
