"""The lean Redis reader of the gateway's hot path (portal/redis_cache.py), on a real Redis.

It must read exactly what Django's Redis backend writes, count in one round trip, and
never reuse a connection whose state it cannot vouch for.
"""

import socket
import threading
import uuid

import pytest

from portal.cache.redis import RedisCache
from portal.cache.resp import RespClient
from tests.e2e.servers import require_redis
from tokens.gateway.info import TokenInfo


def _backend(url: str, **options) -> RedisCache:
    params = {
        "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1, **options},
        "KEY_PREFIX": f"lean-{uuid.uuid4().hex[:8]}",
    }
    return RedisCache(url, params)


@pytest.fixture
def backend():
    cache = _backend(require_redis())
    assert cache._resp is not None, "a plain redis:// URL gets the lean reader"
    yield cache
    cache.clear()


def test_it_reads_what_djangos_backend_wrote(backend):
    info = TokenInfo(
        7, str(uuid.uuid4()), 3, "Zoë", 1, None, ((1, 2),),
    )  # fmt: skip
    backend.set("token", info)
    backend.set("number", 42)
    backend.set("text", "purged")

    values, count = backend.read(["token", "number", "missing", "text"])

    assert values == {"token": info, "number": 42, "text": "purged"}
    assert values == backend.get_many(["token", "number", "missing", "text"])
    assert count is None


def test_a_counter_counts_in_the_same_round_trip_and_expires(backend):
    counts = [backend.read(["x"], ("hits", 30))[1] for _ in range(3)]

    assert counts == [1, 2, 3]
    assert backend.get("hits") == 3  # Django reads the counter as an int
    key = backend.make_key("hits")
    ttl = backend._cache.get_client(key).ttl(key)
    assert 0 < ttl <= 30  # created with its timeout, not made longer by later counts


def test_a_connection_redis_closed_meanwhile_is_replaced_at_once(backend):
    backend.set("k", "v")
    assert backend.read(["k"])[0] == {"k": "v"}
    host, port = backend._resp.local.sock.getsockname()
    address = f"{host}:{port}"
    client = backend._cache.get_client("k")
    assert client.client_kill(address)  # as a Redis restart or idle timeout would

    assert backend.read(["k"])[0] == {"k": "v"}  # no error: one retry on a new connection


def test_a_connection_whose_setup_failed_is_never_used():
    url = require_redis()
    # Database 99999 does not exist: SELECT fails; the reader must not go on in db 0.
    cache = _backend(url.rsplit("/", 1)[0] + "/99999")

    for _ in range(2):
        with pytest.raises(Exception, match="DB index is out of range"):
            cache.read(["key"])


def test_after_a_timeout_a_late_reply_is_never_read_as_the_next_ones():
    """A server that answers the first request only after the client gave up."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    replies = [b"*1\r\n$5\r\nstale\r\n", b"*1\r\n$-1\r\n"]  # late MGET answer, then a miss
    connections = []

    server_info = b"# Server\r\nrun_id:0123456789abcdef0123456789abcdef01234567\r\n"
    replication = b"# Replication\r\nrole:master\r\nmaster_replid:89abcdef\r\n"

    def answer(conn, reply, delay):
        conn.recv(65536)  # INFO server and INFO replication, asked on every new connection
        for info in (server_info, replication):
            conn.sendall(b"$%d\r\n%s\r\n" % (len(info), info))
        conn.recv(65536)
        threading.Event().wait(delay)
        conn.sendall(reply)

    def serve():
        for reply, delay in zip(replies, (0.5, 0), strict=True):  # the first after the timeout
            conn, _ = listener.accept()
            connections.append(conn)
            threading.Thread(target=answer, args=(conn, reply, delay), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    lean = RespClient("127.0.0.1", port, 0, None, None, 0.2, 1)

    with pytest.raises(TimeoutError):
        lean.execute([b"*2\r\n$4\r\nMGET\r\n$1\r\nk\r\n"])
    second = lean.execute([b"*2\r\n$4\r\nMGET\r\n$1\r\nk\r\n"])

    assert second == [[None]], "the second request got its own answer on a new connection"
    assert len(connections) == 2
    server.join(2)
    threading.Event().wait(0.4)  # the late reply is sent to a closed connection
    listener.close()
    for conn in connections:
        conn.close()


def test_mark_adds_what_djangos_backend_reads(backend):
    assert backend.mark("used", 30) is True
    assert backend.mark("used", 30) is False  # set already: not replaced
    assert backend.get("used") == 1
    assert backend.add("used", 2, 30) is False  # Django's add sees the same key
    ttl = backend._cache.get_client().ttl(backend.make_key("used"))
    assert 28 <= ttl <= 30
    backend.set("other", 5)
    assert backend.mark("other", 30) is False
    assert backend.get("other") == 5
