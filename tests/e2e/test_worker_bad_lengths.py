"""A Content-Length the worker's own reader (``portal.serving.reader``) cannot take is left to
gunicorn's parser, which answers it as it answers any other request: thousands of digits
are a 400, never a 500."""

import re
import socket

import pytest
from gunicorn.config import Config

from portal.serving import reader as lean_http
from tests.e2e import servers

CHECK = b"GET /gateway/auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tpk_x\r\n"
LENGTHS = [
    b"1" * 5000,  # int() refuses strings of over 4300 digits
    b"0" * 4999 + b"1",
    b"1" * 200,
    b"00000",  # a plain zero, spelt long
]


def request(length: bytes) -> bytes:
    return CHECK + b"Content-Length: " + length + b"\r\n\r\n"


@pytest.mark.parametrize("length", LENGTHS, ids=lambda length: f"{len(length)} digits")
def test_the_reader_leaves_a_long_length_to_gunicorn(length):
    reader = lean_http.Reader(Config(), ["/gateway/auth"])

    assert reader.read(request(length)) is None
    assert reader.read(request(b"0")) is not None  # (the same request, plainly spelt)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The portal by our worker and by gunicorn's stock sync worker, on one database."""
    folder = tmp_path_factory.mktemp("lengths")
    env = servers.portal_env(DATABASE_URL=f"sqlite:///{folder / 'portal.sqlite3'}")
    servers.manage("migrate", "--no-input", env=env)
    stock_env = dict(env, GUNICORN_CMD_ARGS="--worker-class sync")
    with servers.gunicorn(env=env) as ours, servers.gunicorn(env=stock_env) as stock:
        yield ours, stock


def exchange(base_url: str, data: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return re.sub(rb"\r\nDate: [^\r]*", b"", answer, count=1)


@pytest.mark.e2e
@pytest.mark.parametrize("length", LENGTHS, ids=lambda length: f"{len(length)} digits")
def test_the_worker_answers_a_long_length_as_gunicorn_does(served, length):
    ours, stock = served

    answer = exchange(ours, request(length))

    assert answer == exchange(stock, request(length))
    assert not answer.startswith(b"HTTP/1.1 500")
    if len(length) > 4300:
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
