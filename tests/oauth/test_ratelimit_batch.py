"""Rate limits counted in batches (tokens/ratelimit.py): exact for small limits, one cache
round trip per hundredth of a large limit, and a bounded overshoot across processes."""

import pytest
from django.core.cache import cache as django_cache

from tokens import ratelimit


@pytest.fixture
def limits(settings):
    def set_limit(scope: str, limit: str) -> None:
        settings.TOKEN_PORTAL = {
            **settings.TOKEN_PORTAL,
            "RATE_LIMITS": {**settings.TOKEN_PORTAL["RATE_LIMITS"], scope: limit},
        }

    return set_limit


class CacheCounts:
    def __init__(self, monkeypatch):
        self.calls = []
        real = ratelimit.cache.count

        def count(key, timeout, amount=1):
            self.calls.append(amount)
            return real(key, timeout, amount)

        monkeypatch.setattr(ratelimit.cache, "count", count)


@pytest.mark.parametrize(
    ("limit", "batch"), [("1/s", 1), ("60/m", 1), ("199/s", 1), ("200/s", 2), ("10000/s", 100)]
)
def test_the_batch_is_a_hundredth_of_the_limit(limit, batch):
    allowed, period = ratelimit.parse_limit(limit)
    assert ratelimit.batch_size(ratelimit.Window("k", allowed, period, 0.0)) == batch


def test_a_small_limit_is_counted_exactly_on_every_request(limits, monkeypatch):
    limits("token", "3/h")
    counts = CacheCounts(monkeypatch)
    answers = [ratelimit.retry_after("token", "10.0.0.1") for _ in range(4)]
    assert answers[:3] == [None, None, None] and answers[3] is not None
    assert counts.calls == [1, 1, 1, 1]


def test_a_large_limit_goes_to_the_cache_once_per_batch(limits, monkeypatch):
    limits("introspect", "1000/h")  # batch of 10
    counts = CacheCounts(monkeypatch)
    window = ratelimit.window("introspect", "10.0.0.2")
    seen = [ratelimit.count(window) for _ in range(25)]
    assert counts.calls == [10, 10]
    assert seen == list(range(1, 26))  # the estimate counts every request of this process


def test_other_processes_counts_arrive_with_each_batch(limits):
    limits("introspect", "1000/h")
    window = ratelimit.window("introspect", "10.0.0.3")
    django_cache.set(window.key, 500, 3600)  # other processes have added 500 meanwhile
    counts = [ratelimit.count(window) for _ in range(10)]
    assert counts[:9] == list(range(1, 10))  # not known before this process's batch is full
    assert counts[9] == 510


def test_the_overshoot_across_processes_is_at_most_one_batch_each(limits, monkeypatch):
    """Four processes (each with its own tally) share one counter: the window admits at
    most 4 × batch requests beyond its limit."""
    limits("introspect", "1000/h")
    window = ratelimit.window("introspect", "10.0.0.4")
    tallies = [{} for _ in range(4)]
    monkeypatch.setattr(ratelimit, "_tally", tallies[0])  # restored afterwards
    admitted = 0
    for request in range(2000):
        ratelimit._tally = tallies[request % 4]  # this request's process
        if window.retry_after(ratelimit.count(window)) is None:
            admitted += 1
    batch = ratelimit.batch_size(window)
    assert window.allowed <= admitted <= window.allowed + 4 * batch


def test_when_the_cache_is_down_a_batch_waits_for_the_next_round_trip(limits, monkeypatch):
    limits("introspect", "1000/h")
    window = ratelimit.window("introspect", "10.0.0.5")
    real = ratelimit.cache.count

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(ratelimit.cache, "count", down)
    counts = [ratelimit.count(window) for _ in range(10)]
    assert counts[:9] == list(range(1, 10)) and counts[9] is None  # let through
    monkeypatch.setattr(ratelimit.cache, "count", real)
    assert ratelimit.count(window) == 11  # the lost batch is counted with this request


def test_small_limits_keep_nothing_in_the_process(limits):
    """Exact counting needs no tally: a flood of client addresses cannot grow one."""
    limits("token", "60/m")
    for n in range(500):
        ratelimit.retry_after("token", f"10.1.{n // 250}.{n % 250}")
    assert ratelimit._tally == {}


def test_old_windows_are_forgotten(limits):
    limits("introspect", "1000/s")
    for second in range(10_050):
        window = ratelimit.Window(f"rl:introspect:{second}:x", 1000, 1, float(second))
        ratelimit.take(window)
    assert len(ratelimit._tally) <= 10_000
