"""portal.serving.worker.SyncWorker: gunicorn's sync worker, closing at once when nothing is unread.

The servers here are real gunicorns with one worker, started in the project's root, so
they read ``gunicorn.conf.py`` as production does.
"""

import json
import socket

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader

from portal.serving.worker import body_consumed, nothing_unread
from tests.e2e import servers

CHECK = b"GET /gateway/auth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class _Request:
    def __init__(self, body):
        self.body = body


@pytest.mark.parametrize(
    ("body", "consumed"),
    [
        (None, True),
        (Body(LengthReader(None, 0)), True),
        (Body(LengthReader(None, 10)), False),
        (Body(ChunkedReader(None, None)), False),
    ],
)
def test_body_consumed(body, consumed):
    assert body_consumed(_Request(body)) is consumed


def test_a_failed_body_read_is_not_consumed():
    body = Body(LengthReader(None, 0))
    body.failed = True
    assert body_consumed(_Request(body)) is False


def test_nothing_unread():
    server, client = socket.socketpair()
    with server, client:
        assert nothing_unread(server) is True  # nothing sent
        client.sendall(b"x")
        assert nothing_unread(server) is False  # a byte waits
        assert server.recv(1) == b"x"
        assert nothing_unread(server) is True  # read: nothing waits
        client.shutdown(socket.SHUT_WR)
        assert nothing_unread(server) is True  # the client's end of stream is not data
    assert nothing_unread(server) is False  # a closed socket: leave it to the linger


@pytest.fixture(scope="module")
def portal_env(tmp_path_factory):
    database = tmp_path_factory.mktemp("worker") / "portal.sqlite3"
    env = servers.portal_env(DATABASE_URL=f"sqlite:///{database}")
    servers.manage("migrate", "--no-input", env=env)
    return env


def exchange(base_url: str, request: bytes, *, timeout: float) -> tuple[socket.socket, bytes]:
    """Send ``request``, read the answer to the server's end of stream; the socket stays open."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.sendall(request)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return sock, answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.e2e
@pytest.mark.parametrize(
    "request_bytes",
    [
        CHECK,
        # A body, read to its end by the view (wrong credentials: 401).
        b"POST /oauth/introspect/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Basic bm9ib2R5Om5vdGhpbmc=\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\n"
        b"token=abc",
    ],
    ids=["no body", "body read"],
)
def test_the_worker_is_free_while_the_last_client_keeps_its_connection(portal_env, request_bytes):
    """A client that reads its answer but never closes must not hold the only worker: the
    next client is answered at once (gunicorn's own sync worker waits up to 2 s here)."""
    with servers.gunicorn(env=portal_env, workers=1) as base_url:
        first, answer = exchange(base_url, request_bytes, timeout=5)
        with first:
            assert status_of(answer) == 401
            second, answer = exchange(base_url, CHECK, timeout=1.5)
            second.close()
            assert status_of(answer) == 401


@pytest.mark.e2e
def test_gunicorns_own_sync_worker_lingers(portal_env):
    """The contrast that makes the test above mean something: with the stock worker the
    second client waits out the first one's linger, beyond its 1.5 s timeout."""
    env = dict(portal_env, GUNICORN_CMD_ARGS="--worker-class sync")
    with servers.gunicorn(env=env, workers=1) as base_url:
        first, _ = exchange(base_url, CHECK, timeout=5)
        with first, pytest.raises(TimeoutError):
            exchange(base_url, CHECK, timeout=1.5)


@pytest.mark.e2e
def test_an_answer_before_the_body_is_read_arrives_whole(portal_env):
    """A body too big to read is answered with 413 before it has all arrived: the worker
    must linger (a close with unread data resets the connection, and a reset can destroy
    the answer before the client reads it)."""
    length = 1_000_000
    head = (
        b"POST /oauth/introspect/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n\r\n"
    )
    with servers.gunicorn(env=portal_env, workers=1) as base_url:
        sock, answer = exchange(base_url, head + b"token=" + b"a" * 60_000, timeout=5)
        sock.close()
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 413
    declared = next(
        int(line.split(b":", 1)[1])
        for line in head_part.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert len(body) == declared
    assert json.loads(body)["error"] == "invalid_request"
