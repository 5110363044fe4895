"""Redis's local tier (portal/redis_cache.py, LocalTier), on a real Redis.

Each ``RedisCache`` below has a tier and a listener of its own, as each gunicorn worker
has: two of them on one key prefix stand for two processes. The property that matters:
once a write of a gateway key returns, no tier answers with what it held before.
"""

import socket
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
import redis

from portal.cache.redis import RedisCache
from portal.cache.tier import LocalTier, settle_once
from tests.e2e.servers import require_redis

TIER = {
    "prefixes": ("gw:tok:", "gw:apis:"),
    "seconds": 30,
    "ping": 0.01,
    "trust": 0.05,
    "settle": 0.08,
}


def _backend(url: str, prefix: str, *, keep: bool = True) -> RedisCache:
    """A backend with a tier and a listener of its own: another process, as it were (in
    one process, backends share one tier: see the test of that below)."""
    options = {"LOCAL_TIER": {**TIER, "keep": keep}, "socket_timeout": 1}
    backend = RedisCache(url, {"OPTIONS": options, "KEY_PREFIX": prefix})
    if keep:
        backend._tier = LocalTier(backend._resp, backend._purges[1], **TIER)
    return backend


def _trusted(backend: RedisCache) -> RedisCache:
    backend._tier.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if time.monotonic() < backend._tier.trusted_until:
            return backend
        time.sleep(0.005)
    raise AssertionError("the listener never got an answer to its PING")


@pytest.fixture
def pair():
    url = require_redis()
    prefix = f"tier-{uuid.uuid4().hex[:8]}"
    first, second = _backend(url, prefix), _backend(url, prefix)
    yield _trusted(first), _trusted(second)
    for backend in (first, second):
        backend._tier.stop()
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}:*"):  # the entries of every run_id
        client.delete(key)


class RoundTrips:
    """Counts the lean reader's round trips; ``broken`` makes each one fail."""

    def __init__(self, backend, monkeypatch):
        self.count, self.broken = 0, False
        real = backend._resp.execute

        def execute(commands):
            self.count += 1
            if self.broken:
                raise ConnectionError("no round trip expected here")
            return real(commands)

        monkeypatch.setattr(backend._resp, "execute", execute)


def keep_all(value):
    return True


def test_a_warm_read_makes_no_round_trip(pair, monkeypatch):
    first, _ = pair
    first.set("gw:tok:x", "active", 30)
    trips = RoundTrips(first, monkeypatch)
    assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "active"}
    assert trips.count == 1
    trips.broken = True
    for _ in range(3):
        assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "active"}
    assert trips.count == 1


def test_a_write_elsewhere_is_seen_as_soon_as_it_returns(pair):
    first, second = pair
    for attempt in range(40):
        value = f"active-{attempt}"
        second.set("gw:tok:x", value, 30)
        assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": value}
        assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": value}
        second.set("gw:tok:x", "purged", 10)  # a revoke: returns once every tier dropped it
        assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "purged"}


def test_deletes_and_clears_elsewhere_are_seen_too(pair):
    first, second = pair
    second.set("gw:apis:v", "one", None)
    assert first.read(["gw:apis:v"], keep_local=keep_all)[0] == {"gw:apis:v": "one"}
    second.delete("gw:apis:v")
    assert first.read(["gw:apis:v"], keep_local=keep_all)[0] == {}
    second.set("gw:apis:v", "two", None)
    assert first.read(["gw:apis:v"], keep_local=keep_all)[0] == {"gw:apis:v": "two"}
    second.clear()
    assert first.read(["gw:apis:v"], keep_local=keep_all)[0] == {}


def test_a_tier_whose_subscription_died_answers_nothing_of_its_own(pair):
    first, second = pair
    second.set("gw:tok:x", "active", 30)
    assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "active"}
    # The first tier's subscription ends: it hears of no purge any more.
    admin = redis.Redis.from_url(require_redis())
    name = f"tp-purges-{first._tier._pid}"
    for client in admin.client_list(_type="pubsub"):
        if client["name"] == name and int(client["id"]) != 0:
            admin.client_kill_filter(_id=client["id"])
    second.set("gw:tok:x", "purged", 10)  # published to nobody in the first process
    assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "purged"}


class FreezableProxy:
    """A TCP relay to Redis that can stop relaying while keeping its connections open: a
    subscription that is silently gone (a half-open connection, a network partition)."""

    def __init__(self, address):
        self.address, self.frozen = address, threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.address)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(source, target), daemon=True).start()

    def _relay(self, source, target):
        try:
            while data := source.recv(65536):
                if not self.frozen.is_set():
                    target.sendall(data)
        except OSError:
            pass

    def close(self):
        self.server.close()


def test_a_tier_cut_off_without_knowing_it_stops_answering(pair):
    """The listener hears nothing more, and no error either: its trust lapses by itself
    before any write can return, so a read after the write goes to Redis."""
    first, second = pair
    proxy = FreezableProxy(first._resp.address)
    try:
        tier = first._tier
        tier.stop()  # the old listener stops; a new one goes through the proxy
        tier.resp = SimpleNamespace(
            address=("127.0.0.1", proxy.port), setup=first._resp.setup, timeout=5.0,
            connect_timeout=1.0,
        )  # fmt: skip
        _trusted(first)
        second.set("gw:tok:x", "active", 30)
        assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "active"}
        proxy.frozen.set()
        second.set("gw:tok:x", "purged", 10)
        assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "purged"}
    finally:
        proxy.close()


def test_without_answered_pings_every_read_goes_to_redis(pair, monkeypatch):
    first, _ = pair
    first.set("gw:tok:x", "active", 30)
    first.read(["gw:tok:x"], keep_local=keep_all)
    first._tier.stop()  # no listener: no answered PING, no trust
    monkeypatch.setattr(first._tier, "start", lambda: None)
    trips = RoundTrips(first, monkeypatch)
    first.read(["gw:tok:x"], keep_local=keep_all)
    first.read(["gw:tok:x"], keep_local=keep_all)
    assert trips.count == 2


def test_what_a_read_finds_during_a_purge_is_not_kept(pair, monkeypatch):
    first, _ = pair
    first.set("gw:tok:x", "active", 30)
    real = first._resp.execute
    trips = []

    def purged_meanwhile(commands):
        trips.append(commands)
        replies = real(commands)
        if len(trips) == 1:
            first._tier.drop()  # the listener applies a purge while the answer travels
        return replies

    monkeypatch.setattr(first._resp, "execute", purged_meanwhile)
    first.read(["gw:tok:x"], keep_local=keep_all)
    first.read(["gw:tok:x"], keep_local=keep_all)
    assert len(trips) == 2  # the first answer went into the dropped dict


def test_only_the_gateways_keys_and_kept_values_stay(pair, monkeypatch):
    first, _ = pair
    first.set("gw:tok:x", "purged", 10)
    first.set("other", "value", 30)
    trips = RoundTrips(first, monkeypatch)
    for _ in range(2):
        first.read(["gw:tok:x"], keep_local=lambda value: value != "purged")
        first.read(["other"], keep_local=keep_all)
        first.read(["gw:tok:x"])  # no keep_local: nothing is kept
    assert trips.count == 6


def test_a_counter_still_goes_to_redis(pair, monkeypatch):
    first, _ = pair
    first.set("gw:tok:x", "active", 30)
    first.read(["gw:tok:x"], keep_local=keep_all)
    trips = RoundTrips(first, monkeypatch)
    values, counted = first.read(["gw:tok:x"], ("rl:x", 5, 3), keep_local=keep_all)
    assert (values, counted, trips.count) == ({"gw:tok:x": "active"}, 3, 1)
    assert first.read([], ("rl:x", 5, 2))[1] == 5


def test_writes_in_settle_once_wait_once_at_its_end(pair, monkeypatch):
    _, second = pair
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    with settle_once():
        for attempt in range(3):
            second.set("gw:tok:x", f"v{attempt}", 30)
        assert sleeps == []
    assert len(sleeps) == 1 and 0 < sleeps[0] <= TIER["settle"]
    second.set("gw:tok:x", "v", 30)  # outside: each write waits
    assert len(sleeps) == 2 and sleeps[1] == TIER["settle"]
    second.set("rl:other", 1, 30)  # not a gateway key: no purge, no wait
    assert len(sleeps) == 2


def test_the_settings_must_keep_ping_trust_and_settle_in_order():
    with pytest.raises(ValueError, match="ping < trust < settle"):
        RedisCache(
            "redis://127.0.0.1:6379/0",
            {"OPTIONS": {"LOCAL_TIER": {**TIER, "trust": 0.1}}, "KEY_PREFIX": "x"},
        )


def test_backends_of_one_process_share_its_tier():
    """Django makes a backend per thread: one tier and one listener per process."""
    url = require_redis()
    options = {"LOCAL_TIER": TIER}
    first = RedisCache(url, {"OPTIONS": options, "KEY_PREFIX": "shared-x"})
    second = RedisCache(url, {"OPTIONS": options, "KEY_PREFIX": "shared-x"})
    other = RedisCache(url, {"OPTIONS": options, "KEY_PREFIX": "shared-y"})
    assert first._tier is second._tier
    assert other._tier is not first._tier  # another prefix, another channel


def test_a_process_that_keeps_no_tier_still_publishes_its_writes(pair):
    """Servers with TOKEN_PORTAL_LOCAL_CACHE=0 beside servers with a tier: a revoke on the
    first kind must reach the second."""
    first, _ = pair
    plain = _backend(require_redis(), first.key_prefix, keep=False)
    assert plain._tier is None
    plain.set("gw:tok:x", "active", 30)
    assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "active"}
    plain.set("gw:tok:x", "purged", 10)
    assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {"gw:tok:x": "purged"}
    plain.delete_many(iter(["gw:tok:x"]))  # an iterator, consumed once
    assert first.read(["gw:tok:x"], keep_local=keep_all)[0] == {}


def test_a_local_copy_lapses_with_its_entry_in_redis(pair):
    first, _ = pair
    first.add("gw:tok:x", "active", 1)  # as a check fills the cache
    first.read(["gw:tok:x"], keep_local=keep_all)
    value, expires = first._tier.entries["gw:tok:x"]
    assert value == "active"
    assert expires - time.monotonic() <= 1.0  # not the tier's 30 s


def test_a_redis_user_without_the_channel_cannot_make_a_change_look_done(pair, caplog):
    """Redis 7 ACLs give new users no channel by default. A user that may not PUBLISH
    cannot tell the processes that keep local copies (some may SUBSCRIBE with another
    user): every change of a gateway key fails loudly, and the refusal is logged once."""
    url = require_redis()
    admin = redis.Redis.from_url(url)
    user = f"tp-test-{uuid.uuid4().hex[:8]}"
    try:
        admin.acl_setuser(
            user, enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all"],
            channels=[], reset_channels=True,
        )  # fmt: skip
        limited = _backend(f"redis://{user}:secret@127.0.0.1:6379/0", "acl-x", keep=False)
        for key in ("gw:tok:x", "gw:tok:y"):
            with pytest.raises(Exception, match="NOPERM"):
                limited.set(key, "purged", 10)
        refusals = [r for r in caplog.records if "refuses PUBLISH" in r.getMessage()]
        assert len(refusals) == 1
    finally:
        admin.acl_deluser(user)
        admin.delete("acl-x:1:gw:tok:x", "acl-x:1:gw:tok:y")


def test_a_forked_process_starts_afresh(pair, monkeypatch):
    first, _ = pair
    first.set("gw:tok:x", "active", 30)
    first.read(["gw:tok:x"], keep_local=keep_all)
    assert first._tier.entries
    monkeypatch.setattr("portal.cache.tier.os.getpid", lambda: 4_000_000)
    first._tier.start()  # as the child's first read does
    assert first._tier.entries == {} and first._tier.trusted_until == 0.0
    assert first._tier._pid == 4_000_000
