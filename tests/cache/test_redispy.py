"""The redis-py stand-in for the lean client (portal/cache/redispy.py), on a real Redis:
the measurement switch must change nothing but the client (bench/RESULTS.md, session 5)."""

import uuid

import pytest
import redis

from portal.cache.redis import RedisCache
from portal.cache.redispy import RedisPyClient
from portal.cache.resp import RespClient
from tests.e2e.servers import require_redis

URL = "redis://127.0.0.1:6379/11"
TIER = {"prefixes": ("gw:tok:",), "seconds": 30, "settle": 0.0, "keep": False}


def _backend(prefix: str, client: str) -> RedisCache:
    options = {"socket_timeout": 1, "LOCAL_TIER": dict(TIER), "REDIS_CLIENT": client}
    return RedisCache(URL, {"OPTIONS": options, "KEY_PREFIX": prefix})


def _sequence(backend: RedisCache) -> list:
    """Reads, adds, sets, counts and purges, and every reply Redis gave the client."""
    replies = []
    execute = backend._resp.execute

    def recording(commands, **kwargs):
        answer = execute(commands, **kwargs)
        replies.append([r if not isinstance(r, int) or r < 1000 else "pttl" for r in answer])
        return answer

    backend._resp.execute = recording
    outcome = [
        backend.read(["gw:tok:a", "gw:tok:b"], ("hits", 30)),
        backend.add("gw:tok:a", {"scopes": ["read"]}, 20),
        backend.add("gw:tok:a", "second", 20),
        backend.mark("seen", 20),
        backend.mark("seen", 20),
        backend.read(["gw:tok:a", "gw:tok:b"], ("hits", 30)),
        backend.set("gw:tok:b", 42, 20),
        backend.get_many(["gw:tok:a", "gw:tok:b"]),
        backend.delete("gw:tok:a"),  # a purge: written and published
        backend.read(["gw:tok:a", "gw:tok:b"], ("hits", 30)),
        backend.server_epoch() is not None,
    ]
    return outcome, replies


@pytest.fixture
def backends():
    require_redis(URL)
    made = [_backend(f"rp-{uuid.uuid4().hex[:8]}", name) for name in ("resp", "redis-py")]
    yield made
    client = redis.Redis.from_url(URL)
    for backend in made:
        for key in client.scan_iter(f"{backend.key_prefix}:*"):
            client.delete(key)
        backend._resp.close()


def test_the_switch_gives_redis_py_under_the_same_interface(backends):
    lean, stand_in = backends

    assert type(lean._resp) is RespClient
    assert type(stand_in._resp) is RedisPyClient
    assert "REDIS_CLIENT" not in stand_in._options  # never handed to redis-py's pool


def test_both_clients_give_the_same_replies(backends):
    lean, stand_in = backends

    outcome, replies = _sequence(lean)

    assert (outcome, replies) == _sequence(stand_in)
    assert outcome[-1] is True  # the server's epoch was learnt
    assert outcome[1] is True and outcome[2] is False  # the second add found the key
    assert outcome[3] is True and outcome[4] is False
    assert outcome[-2] == ({"gw:tok:b": 42}, 3)
