"""portal.serving.reader: what it accepts, gunicorn reads the same way.

The property: for any bytes a client may send, either ``Reader.read`` declines (and
gunicorn's parser reads them, as always), or gunicorn's own parser and ``wsgi.create``
accept the same request, to the same environ and body, with nothing left over.
"""

import socket

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.http.parser import RequestParser
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portal.serving import reader as lean_http

PATHS = ("/gateway/auth", "/gateway/auth/", "/oauth/introspect/")
CLIENT, SERVER = ("10.1.2.3", 40321), ("127.0.0.1", 8000)
TRUSTED = ("127.0.0.1", 40321)  # in gunicorn's default forwarded_allow_ips
# Objects, not values: compared by what they carry, or not at all.
OBJECTS = {"wsgi.input", "wsgi.errors", "wsgi.file_wrapper", "gunicorn.socket", "wsgi.early_hints"}


def reader(**settings_):
    cfg = Config()
    for name, value in settings_.items():
        cfg.set(name, value)
    return lean_http.Reader(cfg, PATHS), cfg


def gunicorn_reads(data: bytes, cfg, client=CLIENT) -> tuple[dict, bytes, bytes]:
    """gunicorn's environ for ``data``, the body it reads, and what it leaves unread."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        parser = RequestParser(cfg, ours, client)
        request = next(parser)
        _, environ = wsgi.create(request, ours, client, SERVER, cfg)
        body = environ["wsgi.input"].read()
        rest = b""
        while chunk := parser.unreader.read():
            rest += chunk
    return environ, body, rest


def lean_reads(data: bytes, lean: lean_http.Reader, client=CLIENT):
    request = lean.read(data)
    if request is None:
        return None
    environ = lean.environ(request, None, client, SERVER)
    return request, environ, environ["wsgi.input"].read()


def assert_same_as_gunicorn(data: bytes, lean, cfg, client=CLIENT):
    request, environ, body = lean_reads(data, lean, client)
    theirs, their_body, rest = gunicorn_reads(data, cfg, client)
    assert {k: v for k, v in environ.items() if k not in OBJECTS} == {
        k: v for k, v in theirs.items() if k not in OBJECTS
    }
    assert set(theirs) - set(environ) <= {"wsgi.early_hints"}
    assert body == their_body == request.body
    assert rest == b""
    assert request.size == len(data)
    assert type(environ["wsgi.errors"]) is type(theirs["wsgi.errors"])
    assert environ["wsgi.file_wrapper"] is theirs["wsgi.file_wrapper"]


GATEWAY = (
    b"GET /gateway/auth HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Authorization: Bearer tp_abc\r\nX-Original-URI: /pay/x?a=1\r\n\r\n"
)
NGINX = (  # what nginx's auth_request sends upstream (proxy_http_version 1.0 by default)
    b"GET /gateway/auth HTTP/1.0\r\nHost: portal\r\nConnection: close\r\n"
    b"X-Original-URI: /pay/x\r\nX-Real-IP: 192.0.2.7\r\nUser-Agent: curl/8\r\n"
    b"Accept: */*\r\nAuthorization: Bearer tp_abc\r\n\r\n"
)
INTROSPECT = (
    b"POST /oauth/introspect/ HTTP/1.1\r\nHost: portal\r\nUser-Agent: python-requests/2.32\r\n"
    b"Accept-Encoding: gzip, deflate\r\nAccept: application/json\r\nConnection: keep-alive\r\n"
    b"Authorization: Basic YWJjOmRlZg==\r\n"
    b"Content-Type: application/x-www-form-urlencoded;charset=UTF-8\r\n"
    b"Content-Length: 30\r\n\r\ntoken=tp_abc&token_type_hint=a"
)


@pytest.mark.parametrize("data", [GATEWAY, NGINX, INTROSPECT], ids=["wrk", "nginx", "requests"])
def test_everyday_checks_are_read_as_gunicorn_reads_them(data):
    lean, cfg = reader()
    if data is INTROSPECT:
        data = data.replace(
            b"Content-Length: 30", b"Content-Length: %d" % len(b"token=tp_abc&token_type_hint=a")
        )
    assert lean.read(data) is not None
    assert_same_as_gunicorn(data, lean, cfg)


@pytest.mark.parametrize(
    "data",
    [
        # framing that gunicorn handles or refuses with care
        INTROSPECT.replace(b"Content-Length: 30", b"Transfer-Encoding: chunked"),
        INTROSPECT.replace(
            b"Content-Length: 30\r\n", b"Content-Length: 30\r\nContent-Length: 30\r\n"
        ),
        INTROSPECT.replace(b"Content-Length: 30", b"Content-Length: +30"),
        INTROSPECT.replace(b"Content-Length: 30", b"Content-Length: 29"),  # more than the body
        INTROSPECT.replace(b"Content-Length: 30", b"Content-Length: 31"),  # not all here yet
        INTROSPECT.replace(b"Content-Length: 30", b"Expect: 100-continue\r\nContent-Length: 30"),
        GATEWAY + b"GET /gateway/auth HTTP/1.1\r\n\r\n",  # pipelined
        GATEWAY[:-2],  # headers not finished
        # lines and fields
        GATEWAY.replace(b"\r\nAuthorization", b"\nAuthorization"),  # bare LF
        GATEWAY.replace(b"Authorization: Bearer", b"Authorization: Bearer\r\n "),  # folding
        GATEWAY.replace(b"Authorization:", b"Authorization :"),
        GATEWAY.replace(b"Authorization:", b"Authori_zation:"),  # header_map
        GATEWAY.replace(b"tp_abc", b"tp_\x00abc"),
        GATEWAY.replace(b"tp_abc", b"tp_\x80abc"),
        GATEWAY.replace(b"tp_abc", b"tp_\rabc"),
        GATEWAY.replace(b"Host: 127.0.0.1:8000\r\n", b"Host: a\r\nHost: b\r\n"),
        # scheme and forwarding: gunicorn's policy decides
        GATEWAY.replace(b"Host:", b"X-Forwarded-Proto: https\r\nHost:"),
        GATEWAY.replace(b"Host:", b"X-Forwarded-Ssl: on\r\nHost:"),
        # request lines
        GATEWAY.replace(b"/gateway/auth", b"/gateway/aut%68"),
        GATEWAY.replace(b"/gateway/auth", b"//gateway/auth"),
        GATEWAY.replace(b"/gateway/auth", b"/gateway/auth#x"),
        GATEWAY.replace(b"/gateway/auth", b"/tokens/"),
        GATEWAY.replace(b"GET", b"PUT"),
        GATEWAY.replace(b"GET", b"get"),
        GATEWAY.replace(b"HTTP/1.1", b"HTTP/1.2"),
        GATEWAY.replace(b"GET ", b"GET  "),
        b"\r\n" + GATEWAY,
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + GATEWAY,
    ],
)
def test_anything_else_is_left_to_gunicorn(data):
    lean, _ = reader()
    assert lean.read(data) is None


@pytest.mark.parametrize(
    ("setting", "at_the_limit"),
    [
        ("limit_request_fields", 3),  # three fields
        ("limit_request_field_size", 30),  # "Authorization: Bearer tp_abc" and CRLF
        ("limit_request_line", 26),  # "GET /gateway/auth HTTP/1.1"
    ],
)
def test_gunicorns_limits_hold(setting, at_the_limit):
    lean, cfg = reader(**{setting: at_the_limit})
    assert lean.read(GATEWAY) is not None
    assert_same_as_gunicorn(GATEWAY, lean, cfg)
    lean, cfg = reader(**{setting: at_the_limit - 1})
    assert lean.read(GATEWAY) is None
    with pytest.raises((LimitRequestHeaders, LimitRequestLine)):  # gunicorn refuses it
        gunicorn_reads(GATEWAY, cfg)


def _usable(**settings_):
    cfg = Config()
    for name, value in settings_.items():
        cfg.set(name, value)
    return lean_http.usable(cfg, cfg.logger_class(cfg))


def test_usable_with_gunicorns_defaults():
    assert _usable() is True


@pytest.mark.parametrize(
    "settings_",
    [
        {"accesslog": "-"},
        {"statsd_host": "127.0.0.1:8125"},  # its logger counts every request
        {"pre_request": lambda worker, req: None},
        {"loglevel": "debug"},  # the default pre_request logs each request
        {"post_request": lambda worker, req, environ, resp: None},
        {"proxy_protocol": "v1"},
        {"protocol": "uwsgi"},  # uwsgi_allow_ips, and another environ
        {"certfile": __file__},  # TLS
        {"http_parser": "fast"},  # gunicorn_h1c: not the parser compared here
    ],
    ids=lambda settings_: next(iter(settings_)),
)
def test_not_usable_where_gunicorn_does_more(settings_):
    assert _usable(**settings_) is False


def test_not_usable_with_a_script_name(monkeypatch):
    monkeypatch.setenv("SCRIPT_NAME", "/portal")
    assert _usable() is False


def test_the_request_must_fit_in_what_is_peeked():
    lean, cfg = reader()
    padding = lean_http.PEEK - len(GATEWAY) - len(b"X-Pad: \r\n")
    whole = GATEWAY.replace(b"Host:", b"X-Pad: " + b"p" * padding + b"\r\nHost:")
    assert len(whole) == lean_http.PEEK
    assert_same_as_gunicorn(whole, lean, cfg)
    longer = whole.replace(b"X-Pad: ", b"X-Pad: p")
    assert lean.read(longer[: lean_http.PEEK]) is None  # what a peek of it returns


# --- the property ---------------------------------------------------------------------

_header_names = st.sampled_from(
    [b"Host", b"Authorization", b"X-Original-URI", b"Content-Type", b"Content-Length",
     b"Transfer-Encoding", b"Expect", b"X-Forwarded-Proto", b"X-Forwarded-For", b"Connection",
     b"X_Forwarded_For", b"SCRIPT_NAME", b"Script-Name", b"host", b"CONTENT-length", b" Host",
     b"Host ", b"X-A", b"", b"A:B"]
)  # fmt: skip
_value_bytes = st.binary(max_size=12).map(lambda b: bytes(c for c in b if c != 0x3A) or b"v") | (
    st.text(alphabet="abc ,;=/\t\"'-_.:~?%&", max_size=12).map(str.encode)
)
_bad_header = st.tuples(_header_names, st.sampled_from([b": ", b":", b" : ", b":\t"]), _value_bytes)
_good_header = st.tuples(
    st.sampled_from(
        [b"Host", b"Authorization", b"X-Original-URI", b"Content-Type", b"Connection",
         b"X-Real-IP", b"User-Agent", b"Accept", b"X-A-B", b"x-lower", b"X-9"]
    ),
    st.sampled_from([b": ", b":", b":\t", b":  "]),
    st.text(alphabet="abc XYZ09 ,;=/\t\"'-_.:~?&()[]{}<>@!#$%^*+|`", max_size=16).map(str.encode),
)  # fmt: skip
# Mostly well-formed, so that the reader accepts many; now and then anything.
_header = st.integers(0, 11).flatmap(lambda pick: _bad_header if pick == 0 else _good_header)
_query = st.text(alphabet="az09=&?;:/@!$'()*+,~-._", max_size=10).map(str.encode) | st.text(
    alphabet="az09=&?%#;:/@ \x7f\x80", max_size=10
).map(lambda text: text.encode("latin-1"))


@st.composite
def requests(draw):
    method = draw(st.sampled_from([b"GET"] * 4 + [b"POST"] * 4 + [b"HEAD", b"PUT", b"get"]))
    path = draw(
        st.sampled_from(
            [*(p.encode() for p in PATHS * 4),
             b"/oauth/introspect", b"/gateway/aut%68", b"//gateway/auth", b"/tokens/"]
        )
    )  # fmt: skip
    query = draw(st.sampled_from([None, None, b""]) | _query)
    target = path if query is None else path + b"?" + query
    version = draw(
        st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0"] * 2 + [b"HTTP/1.2", b"HTTP/2.0"])
    )
    headers = draw(st.lists(_header, max_size=6, unique_by=lambda header: header[0].lower()))
    body = draw(st.binary(max_size=40))
    length = draw(st.sampled_from(["right"] * 4 + ["none"] * 2 + ["wrong", "plus"]))
    if length == "right":
        headers.append((b"Content-Length", b": ", str(len(body)).encode()))
    elif length == "wrong":
        headers.append((b"Content-Length", b": ", str(len(body) + 1).encode()))
    elif length == "plus":
        headers.append((b"Content-Length", b": ", b"+" + str(len(body)).encode()))
    else:
        body = b"" if draw(st.booleans()) else body
    eol = draw(st.sampled_from([b"\r\n"] * 19 + [b"\n"]))
    lines = [method + b" " + target + b" " + version]
    lines += [name + separator + value for name, separator, value in headers]
    data = eol.join(lines) + eol + eol + body
    if draw(st.integers(0, 19)) == 0:
        data += b"GET / HTTP/1.1\r\n\r\n"
    return data


CONFIGS = [
    {},
    {"limit_request_line": 0, "limit_request_field_size": 0, "limit_request_fields": 0},
    {"header_map": "refuse"},
    {"header_map": "dangerous"},
    {"forwarded_allow_ips": "*"},
]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.sampled_from(CONFIGS), st.sampled_from([CLIENT, TRUSTED]))
def test_whatever_is_read_gunicorn_reads_the_same(data, settings_, client):
    lean, cfg = reader(**settings_)
    if lean.read(data) is None:
        event("left to gunicorn")
        return
    event("read")
    assert_same_as_gunicorn(data, lean, cfg, client)
