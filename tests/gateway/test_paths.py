"""Which URI a gateway check is about, and how its path is resolved (tokens.gateway.paths).

The property tests hold the check against a model of nginx, written here from nginx's
documented behaviour and its request parser (``ngx_http_parse_request_line``,
``ngx_http_parse_complex_uri``; ``merge_slashes`` on, a Unix build), independently of
``tokens.gateway.paths``: whenever the check resolves a URI, it resolves it to the path nginx
routes, and the check never admits a request that nginx routes outside the token's APIs.
"""

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.e2e import servers
from tests.factories import PlanFactory, make_token
from tests.fuzzing import FUZZ, hostile_text
from tests.gateway.test_fastpath import call
from tokens.fastpath import GatewayFastPath
from tokens.gateway import paths

AUTH_URL = "/gateway/auth"
PROPERTY = hypothesis_settings(FUZZ, max_examples=400)

# --- a model of nginx ---------------------------------------------------------------

_SCHEME_AND_HOST = re.compile(
    rb"[A-Za-z][A-Za-z0-9+.-]*://"
    rb"(\[[0-9A-Za-z:._~!$&'()*+,;=-]*\]|[0-9A-Za-z.-]*)"
    rb"(:[0-9]*)?"
)
_HEX = b"0123456789abcdefABCDEF"


def nginx_uri(target: bytes) -> bytes | None:
    """``$uri`` (what nginx matches locations against) for a request line's target; None
    where nginx answers 400 instead."""
    absolute = _SCHEME_AND_HOST.match(target)
    if absolute:
        target = target[absolute.end() :]
        if target[:1] in (b"", b"?"):
            return b"/"  # an absolute URI without a path is "/"
    if target[:1] != b"/":
        return None
    out = bytearray()
    state = "usual"
    i = 0
    while i < len(target):
        ch = target[i]
        i += 1
        if ch <= 0x20 or ch == 0x7F:
            return None  # a space ends the target, controls are refused: no request line
        if ch == ord("%"):
            pair = target[i : i + 2]
            if len(pair) < 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                return None
            i += 2
            ch = int(pair, 16)
            if ch == 0:
                return None
            if ch in b"%#?":  # decoded to a plain character; anything else counts as typed
                out.append(ch)
                state = "usual"
                continue
        elif ch in b"?#":
            break  # the query, or a fragment
        if state == "slash":
            if ch == ord("/"):
                continue  # merge_slashes
            state = "dot" if ch == ord(".") else "usual"
            out.append(ch)
        elif state == "dot":
            if ch == ord("/"):
                out.pop()  # "/./" is "/"
                state = "slash"
            else:
                state = "dot_dot" if ch == ord(".") else "usual"
                out.append(ch)
        elif state == "dot_dot":
            if ch == ord("/"):
                if not _up(out):
                    return None
                state = "slash"
            else:
                state = "usual"
                out.append(ch)
        else:
            state = "slash" if ch == ord("/") else "usual"
            out.append(ch)
    if state == "dot":
        out.pop()
    elif state == "dot_dot" and not _up(out):
        return None
    return bytes(out)


def _up(out: bytearray) -> bool:
    """Drop a trailing "/.." and the segment before it; False above the root."""
    end = len(out) - 4
    while end >= 0 and out[end] != ord("/"):
        end -= 1
    if end < 0:
        return False
    del out[end + 1 :]
    return True


def routed(uri: str) -> str | None:
    """The path nginx routes a request for ``uri`` to, without a trailing slash, as text;
    None if nginx refuses the request."""
    uri_bytes = nginx_uri(uri.encode("utf-8"))
    if uri_bytes is None:
        return None
    return uri_bytes.decode("utf-8", errors="surrogateescape").rstrip("/") or "/"


def under(path: str, base: str) -> bool:
    return path == base or path.startswith(base + "/")


def test_the_model_is_nginx():
    """The model's answers for the cases nginx's documentation and tests describe."""
    assert routed("/a/b/../c") == "/a/c"
    assert routed("/a/./b/.") == "/a/b"
    assert routed("//a///b//") == "/a/b"
    assert routed("/a/%2e%2E/b") == "/b"  # decoded before it is resolved
    assert routed("/a%2fb/..") == "/a"  # an encoded slash is a slash
    assert routed("/admin/users/..;/..;/pay/x") == "/admin/users/..;/..;/pay/x"
    assert routed("/a/%3F/b?q/../c") == "/a/?/b"
    assert routed("/a/%25/b") == "/a/%/b"
    assert routed("http://h:1/a/../b") == "/b"
    assert routed("http://h?x") == "/"
    for refused in ("/..", "/a/../..", "/a%00", "/a/%", "/a/%2x", "a/b", "http://[/pay", "/a b"):
        assert routed(refused) is None, refused


# --- URIs of every hostile shape --------------------------------------------------

_ATOMS = [
    "",
    ".",
    "..",
    "...",
    "..;",
    "..;jsessionid=0A1B",
    ";",
    ";x=1",
    "%2e",
    "%2E%2e",
    "%2e%2e;",
    ".%2e",
    "%2f",
    "%2F..",
    "%5c",
    "\\",
    "%00",
    "%",
    "%2",
    "%zz",
    "%25",
    "%252e%252e",
    "%3b",
    "%3F",
    "%23",
    "%c0%ae",
    "%e0%80%ae",
    "%C3%A9",
    "é",
    "．．",
    "／",
    "pay",
    "admin",
    "users",
    "x",
    " ",
    "\t",
]
_segment = st.one_of(
    st.sampled_from(_ATOMS),
    st.lists(st.sampled_from(_ATOMS), min_size=2, max_size=3).map("".join),
    st.text(max_size=8),
)
_prefix = st.sampled_from(
    ["/", "//", "/pay/", "/admin/", "/pay/admin/", "http://h/", "HTTP://h:80/", "http://[", ""]
)
_suffix = st.sampled_from(["", "/", "?a=/../admin", "#/../admin", "?", "#", "/?x#y"])
# Climbing out of one API into another: /admin/users/..;/..;/pay/x and its kin.
_DOT_ATOMS = [
    ".",
    "..",
    "...",
    "..;",
    "..;jsessionid=0A1B",
    "..%3b",
    "%2e",
    "%2e%2e",
    "%2E%2e;",
    ".%2e",
    "%2e.",
    "..%00",
    "..%2f",
    "..\\",
    "%c0%ae%c0%ae",
    "．．",
]
_climb = st.builds(
    lambda start, dots, separator, end: start + separator.join(dots) + separator + end,
    st.sampled_from(["/admin/users/", "/admin/", "/pay/admin/", "/", "/pay/"]),
    st.lists(st.sampled_from(_DOT_ATOMS), min_size=1, max_size=3),
    st.sampled_from(["/", "//", "%2f", "/./"]),
    st.sampled_from(["pay/x", "pay", "pay/admin/x", "admin", "x"]),
)
hostile_uri = st.one_of(
    _climb,
    st.builds(
        lambda prefix, segments, slashes, suffix: (
            prefix + "".join(s + sep for s, sep in zip(segments, slashes, strict=False)) + suffix
        ),
        _prefix,
        st.lists(_segment, max_size=8),
        st.lists(st.sampled_from(["/", "//", "%2f", "/./"]), min_size=8, max_size=8),
        _suffix,
    ),
    st.text(max_size=40),
    hostile_text,
)


@PROPERTY
@given(uri=hostile_uri)
@example(uri="/admin/users/..;/..;/pay/x")
@example(uri="/admin/users/%2e%2e;/%2e%2e;/pay/x")
@example(uri="/admin/..;jsessionid=1/pay/x")
@example(uri="http://[/pay")
def test_a_resolved_path_is_the_path_nginx_routes(uri):
    path = paths.normalise_path(uri)
    if path is not None:
        assert path == routed(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "/admin/users/..;/..;/pay/x",
        "/admin/users/%2e%2e;/%2e%2e;/pay/x",
        "/admin/..;jsessionid=0A1B/pay/x",
        "/admin;x/../pay/x",
        "/pay/x;jsessionid=0A1B",
        "/admin/%2e%2e/pay/x",
        "/admin/.%2e/pay/x",
        "/admin/%2F../pay/x",
        "/admin/%5c../pay/x",
        "/admin\\..\\pay/x",
        "/pay/%00",
        "/pay/%",
        "/pay/%G0",
        "/admin/%c0%ae%c0%ae/pay/x",
        "/pay/%ff",
        "/admin/%252e%252e/pay/x",
        "/admin/．．/pay/x",
        "/admin/‥/pay/x",
        "/pay/a b",
        "/pay/\x7f",
        "/..",
        "/pay/../..",
        "http://[/pay",
        "http://h#/pay",
        "http:/pay",
    ],
)
def test_uris_servers_read_differently_are_refused(uri):
    assert paths.normalise_path(uri) is None


# --- through the view -------------------------------------------------------------


@pytest.fixture
def pay_only(db):
    """A token for /pay only, among APIs at /pay, /pay/admin, /admin and /."""
    pay = PlanFactory(name="Gold", api__name="Payments", api__base_path="/pay")
    for name, base_path in (("Pay admin", "/pay/admin"), ("Admin", "/admin"), ("Root", "/")):
        PlanFactory(api__name=name, api__base_path=base_path)
    return make_token(plans=[pay])[1]


def admitted_for_pay(uri: str) -> bool:
    """Whether nginx routes ``uri`` to the /pay API (by the model)."""
    path = routed(uri)
    return path is not None and under(path, "/pay") and not under(path, "/pay/admin")


def gateway_check(secret: str | None, **meta):
    if secret is not None:
        meta["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return Client().get(AUTH_URL, **meta)


@PROPERTY
@given(uri=hostile_uri)
@example(uri="/admin/users/..;/..;/pay/x")
@example(uri="/pay/x")
def test_the_check_admits_only_what_nginx_routes_to_the_tokens_api(pay_only, uri):
    response = gateway_check(pay_only, HTTP_X_ORIGINAL_URI=uri)

    assert response.status_code in (200, 403)
    if response.status_code == 200:
        assert admitted_for_pay(uri)
        assert response["X-Token-Api"] == "Payments"


@FUZZ
@given(
    original=st.one_of(st.none(), hostile_uri),
    forwarded=st.one_of(st.none(), hostile_uri),
    authorization=st.one_of(st.none(), st.just("good"), hostile_text),
    trusted=st.sampled_from(["", "X-Original-URI", "x-forwarded-uri"]),
)
@example(original="/pay/x", forwarded="/admin/x", authorization="good", trusted="")
def test_the_check_takes_any_headers(
    pay_only, settings, original, forwarded, authorization, trusted
):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "TRUSTED_URI_HEADER": trusted}
    meta = {}
    if original is not None:
        meta["HTTP_X_ORIGINAL_URI"] = original
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_URI"] = forwarded
    if authorization is not None:
        meta["HTTP_AUTHORIZATION"] = (
            f"Bearer {pay_only}" if authorization == "good" else authorization
        )

    response = Client().get(AUTH_URL, **meta)

    assert response.status_code in (200, 401, 403)
    if response.status_code == 200:
        checked = {"": original or forwarded, "X-Original-URI": original}.get(trusted, forwarded)
        assert admitted_for_pay(checked)
        if not trusted and None not in (original, forwarded):
            assert original == forwarded


# --- which header ----------------------------------------------------------------


def refusals(caplog, reason: str) -> list[dict]:
    events = (getattr(record, "security", None) or {} for record in caplog.records)
    return [event for event in events if event.get("reason") == reason]


def test_differing_uri_headers_answer_403_and_are_logged(pay_only, caplog, monkeypatch):
    monkeypatch.setattr(paths, "_refusals_logged", {})
    caplog.set_level(logging.INFO, logger="portal.middleware")
    for _ in range(3):
        response = gateway_check(
            pay_only, HTTP_X_ORIGINAL_URI="/pay/x", HTTP_X_FORWARDED_URI="/admin/x"
        )
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response["WWW-Authenticate"]

    (conflict,) = refusals(caplog, "conflicting URI headers")  # sampled: one a minute
    assert (conflict["event"], conflict["status"]) == ("authz_fail", 403)


def test_equal_uri_headers_are_one_uri(pay_only):
    response = gateway_check(pay_only, HTTP_X_ORIGINAL_URI="/pay/x", HTTP_X_FORWARDED_URI="/pay/x")

    assert response.status_code == 200


def test_a_trusted_x_forwarded_uri_ignores_what_the_client_adds(pay_only, settings):
    """Traefik sets X-Forwarded-Uri and passes the client's own X-Original-URI on."""
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "TRUSTED_URI_HEADER": "X-Forwarded-Uri"}

    added = gateway_check(pay_only, HTTP_X_ORIGINAL_URI="/pay/x", HTTP_X_FORWARDED_URI="/admin/x")
    alone = gateway_check(pay_only, HTTP_X_ORIGINAL_URI="/pay/x")
    passed = gateway_check(pay_only, HTTP_X_ORIGINAL_URI="/admin/x", HTTP_X_FORWARDED_URI="/pay/x")

    assert (added.status_code, alone.status_code, passed.status_code) == (403, 403, 200)


def test_a_trusted_x_original_uri_ignores_x_forwarded_uri(pay_only, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "TRUSTED_URI_HEADER": "x-original-uri"}

    passed = gateway_check(pay_only, HTTP_X_ORIGINAL_URI="/pay/x", HTTP_X_FORWARDED_URI="/x")
    refused = gateway_check(pay_only, HTTP_X_FORWARDED_URI="/pay/x")

    assert (passed.status_code, refused.status_code) == (200, 403)


def test_an_unknown_trusted_header_stops_the_start():
    def start(header: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "import portal.settings"],
            cwd=Path(__file__).resolve().parent.parent.parent,
            env=servers.portal_env(TOKEN_PORTAL_TRUSTED_URI_HEADER=header),
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = start("X-Real-URI")

    assert refused.returncode != 0
    assert "TOKEN_PORTAL_TRUSTED_URI_HEADER must be" in refused.stderr
    assert start("x-forwarded-uri").returncode == 0


def test_an_ambiguous_path_is_refused_with_403_and_logged(pay_only, caplog, monkeypatch):
    monkeypatch.setattr(paths, "_refusals_logged", {})
    caplog.set_level(logging.INFO, logger="portal.middleware")

    response = gateway_check(pay_only, HTTP_X_ORIGINAL_URI="/admin/users/..;/..;/pay/x")

    assert response.status_code == 403
    (refusal,) = refusals(caplog, "ambiguous path")
    assert "..;" not in str(refusal)  # the URI is not logged: its query may hold a secret


@FUZZ
@given(
    original=st.one_of(st.none(), hostile_uri),
    forwarded=st.one_of(st.none(), hostile_uri),
)
@example(original="/admin/users/..;/..;/pay/x", forwarded=None)
@example(original="http://[/pay", forwarded=None)
def test_the_wsgi_fast_path_takes_any_uri_a_server_passes_on(pay_only, original, forwarded):
    """As gunicorn hands them over: the header's bytes (UTF-8 here) read as latin-1."""
    headers = {"Authorization": f"Bearer {pay_only}"}
    for name, uri in (("X-Original-URI", original), ("X-Forwarded-Uri", forwarded)):
        if uri is not None:
            headers[name] = uri.encode("utf-8").decode("latin-1")

    reply = call(GatewayFastPath(WSGIHandler()), AUTH_URL, headers=headers)

    assert reply.status.split()[0] in ("200", "403")
    if reply.status.startswith("200"):
        assert admitted_for_pay(original if forwarded is None else forwarded)
