"""The lean read of the local-memory cache (portal/locmem_cache.py): the same answers as
Django's own calls, in one lock, with the same expiry and counter rules."""

import time
import uuid

import pytest

from portal.cache.locmem import LocMemCache
from tokens.gateway.info import TokenInfo


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(time.time())
    monkeypatch.setattr(time, "time", clock)  # locmem and the base backend call time.time()
    return clock


@pytest.fixture
def backend():
    cache = LocMemCache(f"lean-{uuid.uuid4().hex}", {"KEY_PREFIX": "p", "VERSION": 3})
    yield cache
    cache.clear()


def test_it_reads_what_djangos_calls_wrote(backend):
    info = TokenInfo(
        7, str(uuid.uuid4()), 3, "Zoë", 1, None, ((1, 2),),
    )  # fmt: skip
    backend.set("token", info)
    backend.set("number", 42)
    values, counted = backend.read(["token", "number", "missing"])
    assert values == {"token": info, "number": 42}
    assert values == backend.get_many(["token", "number", "missing"])
    assert counted is None


def test_the_key_prefix_and_version_apply():
    name = f"lean-{uuid.uuid4().hex}"  # one store, three key spaces
    mine = LocMemCache(name, {"KEY_PREFIX": "p", "VERSION": 3})
    other_prefix = LocMemCache(name, {"KEY_PREFIX": "q", "VERSION": 3})
    other_version = LocMemCache(name, {"KEY_PREFIX": "p", "VERSION": 4})
    mine.set("k", "mine")
    assert mine.read(["k"])[0] == {"k": "mine"}
    assert other_prefix.read(["k"])[0] == {}
    assert other_version.read(["k"])[0] == {}
    mine.clear()


def test_expired_entries_are_not_read_and_are_dropped(backend, clock):
    backend.set("short", "a", 5)
    backend.set("long", "b", 50)
    clock.now += 6
    assert backend.read(["short", "long"])[0] == {"long": "b"}
    assert backend.make_key("short") not in backend._cache
    assert backend.get("short") is None


def test_the_counter_starts_at_one_and_counts(backend):
    assert backend.read([], ("hits", 60))[1] == 1
    assert backend.read([], ("hits", 60))[1] == 2
    assert backend.read(["hits"], ("hits", 60)) == ({"hits": 3}, 3)
    # Django's own calls see the same counter.
    assert backend.incr("hits") == 4
    assert backend.read([], ("hits", 60))[1] == 5


def test_the_counter_keeps_its_first_expiry_and_starts_again_after_it(backend, clock):
    assert backend.read([], ("hits", 10))[1] == 1
    clock.now += 6
    assert backend.read([], ("hits", 10))[1] == 2  # counting does not extend the window
    clock.now += 5
    assert backend.read([], ("hits", 10))[1] == 1  # the window lapsed: a new one
    clock.now += 9
    assert backend.read([], ("hits", 10))[1] == 2


def test_a_counter_made_by_add_and_incr_is_counted_on(backend):
    backend.add("hits", 0, 60)
    backend.incr("hits")
    assert backend.read([], ("hits", 60))[1] == 2


def test_reads_move_entries_to_the_front_of_the_cull_order(clock):
    cache = LocMemCache(f"lean-{uuid.uuid4().hex}", {"OPTIONS": {"MAX_ENTRIES": 3}})
    cache.set("a", 1)
    cache.set("b", 2)
    cache.set("c", 3)
    cache.read(["a"])  # used lately: not the one culled
    cache.set("d", 4)  # full: culls the least recently used third (one entry)
    assert cache.read(["a", "b", "c", "d"])[0] == {"a": 1, "c": 3, "d": 4}


def test_mark_adds_once_for_its_timeout(backend, clock):
    assert backend.mark("used", 30) is True
    assert backend.mark("used", 30) is False
    assert backend.get("used") == 1
    clock.now += 31
    assert backend.mark("used", 30) is True


def test_a_stored_value_is_unpickled_once_and_a_new_one_is_read(backend):
    backend.set("token", ("active", 1))
    first = backend.read(["token"])[0]["token"]
    assert backend.read(["token"])[0]["token"] is first  # shared, not unpickled again
    backend.set("token", ("revoked", 2))
    assert backend.read(["token"])[0]["token"] == ("revoked", 2)
    backend.delete("token")
    assert backend.read(["token"])[0] == {}
