"""portal.serving.worker.SyncWorker writes a gateway check's answer whole, byte for byte as
gunicorn's own worker writes it.

The servers are real gunicorns started in the project's root; the comparison is with
gunicorn's stock sync worker (``--worker-class sync``) serving the same database.
"""

import json
import os
import re
import socket
import tempfile
import types
from pathlib import Path

import pytest
from authlib.integrations.requests_client import OAuth2Session
from gunicorn.config import Config
from gunicorn.http.wsgi import Response

from portal.serving import worker as workers
from tests.e2e import servers
from tokens.fastpath import GatewayFastPath


def _request(method="GET", version="1.1"):
    major, minor = version.split(".")
    return types.SimpleNamespace(method=method, version=(int(major), int(minor)))


def _written(status, headers, body, *, method="GET", version="1.1"):
    """What ``write_answer`` puts on the wire, and the response it leaves behind."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        resp = Response(_request(method, version), ours, cfg=None)
        workers.write_answer(resp, status, headers, body)
        ours.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := theirs.recv(65536):
            data += chunk
    return data, resp


def test_an_answer_is_written_whole():
    data, resp = _written(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")], b"{}"
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert lines[1].startswith("Server: gunicorn")
    assert re.fullmatch(r"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", lines[2])
    assert lines[3:] == ["Connection: close", "Content-Type: application/json", "Content-Length: 2"]
    assert body == b"{}"
    # What gunicorn's access log reads.
    assert (resp.status, resp.status_code, resp.sent, resp.headers_sent) == ("200 OK", 200, 2, True)


def test_a_write_that_fails_is_logged_with_its_status():
    ours, theirs = socket.socketpair()
    theirs.close()
    with ours:
        ours.close()  # the client has gone: the write fails
        resp = Response(_request(), ours, cfg=None)
        with pytest.raises(OSError):
            workers.write_answer(resp, "200 OK", [("Content-Length", "2")], b"{}")
    assert (resp.status, resp.status_code) == ("200 OK", 200)  # what the access log reads


def test_head_and_http_1_0():
    data, resp = _written("200 OK", [("Content-Length", "2")], b"{}", method="HEAD", version="1.0")
    assert data.startswith(b"HTTP/1.0 200 OK\r\n")
    assert data.endswith(b"Content-Length: 2\r\n\r\n")  # the length, not the body
    assert resp.sent == 0


def test_no_content_has_no_length_and_no_body():
    data, _ = _written("204 No Content", [("Content-Length", "2")], b"{}")
    assert b"content-length" not in data.lower()
    assert data.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    "header",
    [
        ("X-Token-Owner", "alice\r\nSet-Cookie: session=stolen"),
        ("X-Token-Owner", "alice\nSet-Cookie: session=stolen"),
        ("X-Token-Owner", "nul\x00"),
        ("X Token", "name with a space"),
        ("X-Token:", "name with a colon"),
        ("", "no name"),
    ],
)
def test_a_header_that_could_split_the_answer_is_refused(header):
    with pytest.raises(ValueError):
        workers.checked_headers([header])
    with pytest.raises(ValueError):  # and nothing is written
        _written("200 OK", [header], b"")


def test_headers_are_kept_as_gunicorn_keeps_them():
    checked = workers.checked_headers(
        [("X-A", "  padded\t"), ("Connection", "keep-alive"), ("Keep-Alive", "5"), ("X-B", "b")]
    )
    assert checked == [("X-A", "padded"), ("X-B", "b")]  # stripped; hop-by-hop dropped
    # Known after one check; a header refused once is refused again (never remembered).
    assert workers.checked_headers([("X-A", "  padded\t")]) == [("X-A", "padded")]
    for _ in range(2):
        with pytest.raises(ValueError):
            workers.checked_headers([("X-A", "bad\r\n")])


def test_the_worker_answers_only_the_check_paths():
    fastpath = GatewayFastPath(application=None)
    for path in ("/gateway/auth", "/gateway/auth/", "/oauth/introspect/", "/api/gateway/auth"):
        assert fastpath.takes(path), path
    for path in ("/gateway/aut%68", "/oauth/introspect", "/tokens/", "/gateway/auth/x", ""):
        assert not fastpath.takes(path), path


class _Worker(workers.SyncWorker):
    def __init__(self, app):  # no arbiter: only the dispatch is exercised
        self.wsgi = app
        self.takes = getattr(app, "takes", None)
        self.cfg = types.SimpleNamespace(is_ssl=True)  # skip the close-at-once step
        self.calls = []

    def handle_check(self, *args):
        self.calls.append("whole")


def test_the_worker_writes_whole_only_what_the_application_answers(monkeypatch):
    monkeypatch.setattr(
        workers.sync.SyncWorker, "handle_request", lambda self, *args: self.calls.append("gunicorn")
    )
    worker = _Worker(GatewayFastPath(application=None))
    for path in ("/gateway/auth", "/tokens/", "/gateway/aut%68", "/oauth/introspect/"):
        worker.handle_request(None, types.SimpleNamespace(path=path, body=None), None, None)
    assert worker.calls == ["whole", "gunicorn", "gunicorn", "whole"]
    other = _Worker(lambda environ, start_response: [])  # not the portal's application
    other.handle_request(None, types.SimpleNamespace(path="/gateway/auth", body=None), None, None)
    assert other.calls == ["gunicorn"]


class _App:
    """Answers what it is told to, and keeps the environ it was asked with."""

    paths = ("/gateway/auth",)

    def __init__(self, answer):
        self.given, self._answer = [], answer

    def takes(self, raw_path):
        return raw_path in self.paths

    def complete_answer(self, environ):
        self.given.append(environ)
        return self._answer


def real_worker(app, **settings_):
    """The portal's worker as gunicorn makes it (less the fork), serving ``app``."""
    cfg = Config()
    for name, value in settings_.items():
        cfg.set(name, value)
    loader = types.SimpleNamespace(wsgi=lambda: app)
    worker = workers.SyncWorker(0, os.getpid(), [], loader, 30, cfg, cfg.logger_class(cfg))
    worker.load_wsgi()
    return worker


def test_the_worker_reads_plain_checks_where_gunicorn_would_do_nothing_more():
    assert real_worker(GatewayFastPath(application=None)).reader is not None
    assert real_worker(GatewayFastPath(application=None), accesslog="-").reader is None
    assert real_worker(lambda environ, start_response: []).reader is None  # not the portal


PLAIN = b"GET /gateway/auth?x=1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tp_x\r\n\r\n"


def _serve(app, request: bytes, monkeypatch, *, unix=False):
    """The real worker's ``handle`` of a connection that sent ``request``: (what the
    client got, how the connection ended: "closed", "lingered" or "gunicorn")."""
    worker = real_worker(app)
    ended = []
    linger = workers.util.close_graceful
    monkeypatch.setattr(workers.util, "close_graceful", lambda sock: ended.append("lingered"))
    monkeypatch.setattr(
        workers.sync.SyncWorker, "handle", lambda self, *args: ended.append("gunicorn")
    )
    server, client = socket.socketpair()
    family = socket.AF_UNIX if unix else socket.AF_INET
    address = str(Path(tempfile.mkdtemp()) / "sock") if unix else ("127.0.0.1", 0)
    with socket.create_server(address, family=family) as listener, client:
        client.sendall(request)
        worker.handle(listener, server, "" if unix else ("10.0.0.9", 5000))
        if not ended:
            ended.append("closed" if server.fileno() == -1 else "open")
        got = b""
        if ended == ["gunicorn"]:
            assert server.recv(65536, socket.MSG_DONTWAIT) == request  # all left unread
        else:
            client.shutdown(socket.SHUT_WR)
            linger(server)  # (recorded above instead of run: run now, the client has closed)
            client.settimeout(5)
            while chunk := client.recv(65536):
                got += chunk
    server.close()
    return got, ended


def test_a_plain_check_is_read_answered_and_closed(monkeypatch):
    app = _App(("200 OK", [("X-Token-Owner", "alice"), ("Content-Length", "0")], b""))
    got, ended = _serve(app, PLAIN, monkeypatch)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert got.endswith(b"X-Token-Owner: alice\r\nContent-Length: 0\r\n\r\n")
    # Closed at once: the request was consumed to its last byte, nothing is unread.
    assert ended == ["closed"]
    (environ,) = app.given
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == ("/gateway/auth", "x=1")
    assert (environ["HTTP_AUTHORIZATION"], environ["REMOTE_ADDR"]) == ("Bearer tp_x", "10.0.0.9")


@pytest.mark.parametrize(
    ("answer", "request_bytes", "unix"),
    [
        (("200 OK", [], b""), PLAIN.replace(b"Host: t", b"X-Forwarded-Proto: https"), False),
        (("200 OK", [], b""), PLAIN.replace(b"/gateway/auth", b"/tokens/"), False),
        (None, PLAIN, False),  # the application leaves it to Django (a redirect to HTTPS)
        (("200 OK", [], b""), PLAIN, True),  # a unix socket: gunicorn's SERVER_* rules
    ],
    ids=["not plain", "another path", "not answered", "unix socket"],
)
def test_anything_else_is_left_unread_for_gunicorn(answer, request_bytes, unix, monkeypatch):
    got, ended = _serve(_App(answer), request_bytes, monkeypatch, unix=unix)
    assert ended == ["gunicorn"]
    assert got == b""


@pytest.mark.parametrize(
    "answer",
    [
        ("200 OK", [("X-Owner", "a\r\nSet-Cookie: x=1")], b""),  # would split the answer
        ("200 OK\r\nSet-Cookie: x=1", [], b""),
        SystemExit(1),  # the worker's timeout, while the answer is made
    ],
    ids=["header", "status", "timeout"],
)
def test_an_answer_that_cannot_be_given_is_a_500(answer, monkeypatch):
    class Failing(_App):
        def complete_answer(self, environ):
            if isinstance(self._answer, BaseException):
                raise self._answer
            return self._answer

    got, ended = _serve(Failing(answer), PLAIN, monkeypatch)
    assert got.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"Set-Cookie" not in got
    assert ended == ["lingered"]


def test_no_more_body_than_its_length_and_only_a_valid_status():
    data, _ = _written("200 OK", [("Content-Length", "2")], b"{}...")
    assert data.endswith(b"\r\n\r\n{}")
    with pytest.raises(ValueError):
        _written("2000 Nearly", [], b"")


# --- against gunicorn's own worker, over real connections ---------------------------------


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """The portal served three times on one database: by our worker (reading plain checks
    itself: ``portal.serving.reader``), by our worker with an access log (gunicorn reads every
    request then), and by gunicorn's stock sync worker; a client that may introspect;
    an active token."""
    folder = tmp_path_factory.mktemp("answers")
    env = servers.portal_env(DATABASE_URL=f"sqlite:///{folder / 'portal.sqlite3'}")
    servers.manage("migrate", "--no-input", env=env)
    payer = json.loads(
        servers.manage("create_app", "--name", "Payer", "--subscribe", "/pay:Gold", env=env)
    )
    gateway = json.loads(
        servers.manage("create_app", "--name", "Edge gateway", "--can-introspect", env=env)
    )
    log = folder / "access.log"
    logged_env = dict(env, GUNICORN_CMD_ARGS=f"--access-logfile {log}")
    stock_env = dict(env, GUNICORN_CMD_ARGS="--worker-class sync")
    with (
        servers.gunicorn(env=env) as ours,
        servers.gunicorn(env=logged_env) as logged,
        servers.gunicorn(env=stock_env) as stock,
    ):
        with OAuth2Session(payer["client_id"], payer["client_secret"]) as client:
            secret = client.fetch_token(ours + "/oauth/token/", grant_type="client_credentials")[
                "access_token"
            ]
        yield types.SimpleNamespace(
            ours=ours, logged=logged, stock=stock, log=log, gateway=gateway, secret=secret
        )


def exchange(base_url: str, request: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", answer, count=1)


def _basic(client) -> str:
    import base64

    return base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()


def _requests(portal) -> dict[str, bytes]:
    bearer = f"Authorization: Bearer {portal.secret}\r\n".encode()
    basic = f"Authorization: Basic {_basic(portal.gateway)}\r\n".encode()
    form = f"token={portal.secret}".encode()
    post = (
        b"POST /oauth/introspect/ HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
    )
    return {
        "forward-auth, active": b"GET /gateway/auth HTTP/1.1\r\nHost: t\r\n"
        + bearer
        + b"X-Original-URI: /pay/x\r\n\r\n",
        "forward-auth, wrong API": b"GET /gateway/auth?a=1 HTTP/1.1\r\nHost: t\r\n"
        + bearer
        + b"X-Original-URI: /other\r\n\r\n",
        "forward-auth, no token": b"GET /gateway/auth/ HTTP/1.1\r\nHost: t\r\n\r\n",
        "forward-auth, HEAD": b"HEAD /gateway/auth HTTP/1.1\r\nHost: t\r\n"
        + bearer
        + b"X-Original-URI: /pay/x\r\n\r\n",
        "forward-auth, HTTP/1.0": b"GET /gateway/auth HTTP/1.0\r\n"
        + bearer
        + b"X-Original-URI: /pay/x\r\n\r\n",
        "forward-auth, behind TLS": b"GET /gateway/auth HTTP/1.1\r\nHost: t\r\n"
        b"X-Forwarded-Proto: https\r\n" + bearer + b"X-Original-URI: /pay/x\r\n\r\n",
        "introspection, active": post
        + basic
        + f"Content-Length: {len(form)}\r\n\r\n".encode()
        + form,
        "introspection, unknown token": post + basic + b"Content-Length: 9\r\n\r\ntoken=abc",
        "introspection, no client": post + b"Content-Length: 9\r\n\r\ntoken=abc",
        "introspection, GET": b"GET /oauth/introspect/ HTTP/1.1\r\nHost: t\r\n" + basic + b"\r\n",
    }


@pytest.mark.e2e
def test_answers_are_the_bytes_gunicorns_own_worker_sends(portal):
    for name, request in _requests(portal).items():
        stock = without_date(exchange(portal.stock, request))
        assert without_date(exchange(portal.ours, request)) == stock, name
        assert without_date(exchange(portal.logged, request)) == stock, name
        assert stock.split(b" ", 2)[1] != b"500", name
    # The cases cover what they claim to.
    statuses = {
        name: exchange(portal.ours, request).split(b" ", 2)[1]
        for name, request in _requests(portal).items()
    }
    assert statuses["forward-auth, active"] == b"200"
    assert statuses["forward-auth, wrong API"] == b"403"
    assert statuses["forward-auth, no token"] == b"401"
    assert statuses["introspection, active"] == b"200"
    assert statuses["introspection, no client"] == b"401"
    head = exchange(portal.ours, _requests(portal)["introspection, active"])
    assert json.loads(head.partition(b"\r\n\r\n")[2])["active"] is True
    behind_tls = exchange(portal.ours, _requests(portal)["forward-auth, behind TLS"])
    assert b"Strict-Transport-Security" in behind_tls  # the scheme gunicorn worked out


@pytest.mark.e2e
def test_whole_answers_are_in_the_access_log(portal):
    answer = exchange(portal.logged, _requests(portal)["introspection, active"])
    body = answer.partition(b"\r\n\r\n")[2]
    exchange(portal.logged, _requests(portal)["forward-auth, no token"])
    lines = portal.log.read_text().splitlines()
    assert any(f'"POST /oauth/introspect/ HTTP/1.1" 200 {len(body)} ' in line for line in lines)
    assert any('"GET /gateway/auth/ HTTP/1.1" 401 0 ' in line for line in lines)
    assert portal.secret not in portal.log.read_text()
