"""The WSGI entry gunicorn serves: the gateway's endpoints answered before Django's handler.

``portal.wsgi.application`` (``tokens.fastpath.GatewayFastPath``) must answer
``/gateway/auth`` and ``/oauth/introspect/`` exactly as Django's full stack,
``portal.wsgi.django_application``, does. Django's test client has no WSGI entry, so
these tests call both WSGI callables directly with a WSGI environ, as gunicorn would.

Every test commits (``transactional_db``): Django's handler sends ``request_started``,
whose ``close_old_connections`` closes a connection found inside a transaction (the
``db`` fixture's) on PostgreSQL; revokes purge the cache only once they commit; and the
failure tests need real connections, not a test transaction.
"""

import contextlib
import copy
import io
import json
import logging
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import NamedTuple
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.utils import timezone

from portal.logs import JsonFormatter, SecretMaskingFilter, request_context
from portal.middleware import PERMISSIONS_POLICY, content_security_policy
from portal.wsgi import application, django_application
from tests.factories import AppFactory, PlanFactory, make_token
from tests.oauth_helpers import FORM, basic, make_client
from tokens import crypto, ratelimit, services
from tokens.fastpath import GatewayFastPath
from tokens.gateway import check as gateway
from tokens.gateway import forward_auth

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = "/gateway/auth"
INTROSPECT = "/oauth/introspect/"
CHALLENGE = 'Bearer realm="token-portal"'
INVALID_TOKEN = 'Bearer realm="token-portal", error="invalid_token"'
INSUFFICIENT_SCOPE = 'Bearer realm="token-portal", error="insufficient_scope"'


# --- calling a WSGI application ------------------------------------------------------


class Reply(NamedTuple):
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} given {len(values)} times: {values}"
        return values[0] if values else None

    def comparable_headers(self) -> Counter:
        """The headers as a case-insensitive multiset, less what may rightly differ.

        Only ``Content-Length`` is left out: the fast path states it, Django's handler
        leaves it to the server (gunicorn adds it). None of these answers carries
        anything per request (no date, cookie, nonce or echoed request id), so every
        other header must be identical, repeated as often, in either order.
        """
        return Counter(
            (name.lower(), value)
            for name, value in self.headers
            if name.lower() != "content-length"
        )


def call(
    app,
    path: str = AUTH,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    content_type: str = "",
    content_length: str | None = None,
    query: str = "",
    scheme: str = "http",
    script_name: str = "",
    remote_addr: str = "192.0.2.10",
) -> Reply:
    """One request through the WSGI callable ``app``, as a WSGI server would make it."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if scheme == "https" else "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": remote_addr,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body or content_type:
        environ["CONTENT_LENGTH"] = str(len(body))
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    if content_length is not None:  # as sent, however wrong
        environ["CONTENT_LENGTH"] = content_length
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    started = []

    def start_response(status, response_headers, exc_info=None):
        started.append((status, list(response_headers)))

    result = app(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        # What the server does at the end of every request (Django: request_finished).
        if hasattr(result, "close"):
            result.close()
    assert len(started) == 1
    status, response_headers = started[0]
    for name, value in response_headers:
        # PEP 3333: native strings, latin-1 only; and never a line break to inject with.
        assert isinstance(name, str) and isinstance(value, str), (name, value)
        (name + value).encode("latin-1")
        assert not {"\r", "\n"} & set(name + value), (name, value)
    return Reply(status, response_headers, content)


def assert_same_answer(fast: Reply, full: Reply) -> None:
    assert fast.status == full.status
    assert fast.body == full.body
    assert fast.comparable_headers() == full.comparable_headers()


def fresh_applications() -> tuple[GatewayFastPath, WSGIHandler]:
    """Both entries built under the current settings (each caches settings at build time:
    Django's handler its middleware, the fast path its middleware headers)."""
    full = WSGIHandler()
    return GatewayFastPath(full), full


def check_request(secret: str | None = None, uri: str = "/pay/charges", **kwargs) -> dict:
    headers = {"X-Original-URI": uri}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    headers.update(kwargs.pop("headers", {}))
    return {"path": AUTH, "headers": headers, **kwargs}


def introspect_request(params: dict, auth: tuple[str, str] | None, **kwargs) -> dict:
    headers = {"Authorization": basic(*auth)} if auth else {}
    return {
        "path": INTROSPECT,
        "method": "POST",
        "body": urlencode(params).encode(),
        "content_type": FORM,
        "headers": headers,
        **kwargs,
    }


def one_char_changed(secret: str) -> str:
    """``secret`` with its last character replaced by another."""
    return secret[:-1] + ("y" if secret.endswith("x") else "x")


# --- fixtures ----------------------------------------------------------------------


class World(NamedTuple):
    plan: object
    gateway: tuple  # (App, client secret): may introspect
    outsider: tuple  # (App, client secret): may not


@pytest.fixture
def world(transactional_db) -> World:
    plan = PlanFactory(name="Gold", rate_limit=120, api__name="Payments", api__base_path="/pay")
    return World(
        plan=plan,
        gateway=make_client(can_introspect=True, name="Gateway"),
        outsider=make_client(can_introspect=False, name="Outsider"),
    )


def gateway_auth(world: World) -> tuple[str, str]:
    app, secret = world.gateway
    return app.client_id, secret


def endpoint_request(world: World, endpoint: str, secret: str) -> dict:
    """The everyday request of ``endpoint`` about the token ``secret``."""
    if endpoint == "gateway-auth":
        return check_request(secret)
    return introspect_request({"token": secret}, gateway_auth(world))


def is_accepted(reply: Reply, endpoint: str) -> bool:
    """Whether ``reply`` accepts the token (forward-auth's 200, introspection's active)."""
    if endpoint == "gateway-auth":
        assert reply.status in ("200 OK", "401 Unauthorized")
        return reply.status == "200 OK"
    assert reply.status == "200 OK"
    return json.loads(reply.body)["active"]


# --- 1. parity -------------------------------------------------------------------------


class Case(NamedTuple):
    request: dict
    status: str
    headers: dict[str, str | None] = {}  # expected on the answer (None: absent)
    json: dict | None = None  # expected subset of the JSON body


def _active(world: World, **request) -> Case:
    token, secret = make_token(plans=[world.plan], owner="Zoë Ångström")
    return Case(
        check_request(secret, **request),
        "200 OK",
        {
            "X-Token-Id": str(token.public_id),
            "X-Token-Client-Id": token.app.client_id,
            "X-Token-Owner": "Zo%C3%AB %C3%85ngstr%C3%B6m",
            "X-Token-Api": "Payments",
            "X-Token-Plan": "Gold",
            "X-Token-Rate-Limit": "120",
            "Cache-Control": "no-store",
        },
    )


def _hostile() -> Case:
    """Names that would break a header unencoded: line breaks, non-Latin-1 letters."""
    plan = PlanFactory(
        name="Plän\r\nSet-Cookie: p=1", api__name="API 中文", api__base_path="/hostile"
    )
    _, secret = make_token(
        app=AppFactory(name="App Ångström"), owner="Evil\r\nSet-Cookie: x=1", plans=[plan]
    )
    return Case(
        check_request(secret, uri="/hostile/x"),
        "200 OK",
        {
            "X-Token-App": "App %C3%85ngstr%C3%B6m",
            "X-Token-Owner": "Evil%0D%0ASet-Cookie: x=1",
            "X-Token-Api": "API %E4%B8%AD%E6%96%87",
            "X-Token-Plan": "Pl%C3%A4n%0D%0ASet-Cookie: p=1",
            "Set-Cookie": None,
        },
    )


FORWARD_AUTH_CASES = {
    "no authorization": lambda w: Case(
        check_request(), "401 Unauthorized", {"WWW-Authenticate": CHALLENGE}
    ),
    "basic scheme": lambda w: Case(
        check_request(headers={"Authorization": "Basic dXNlcjpwYXNz"}),
        "401 Unauthorized",
        {"WWW-Authenticate": CHALLENGE},
    ),
    "malformed token": lambda w: Case(
        check_request("tpk_short"), "401 Unauthorized", {"WWW-Authenticate": INVALID_TOKEN}
    ),
    "never issued": lambda w: Case(
        check_request(crypto.generate_token()),
        "401 Unauthorized",
        {"WWW-Authenticate": INVALID_TOKEN},
    ),
    "revoked": lambda w: Case(
        check_request(make_token(plans=[w.plan], revoked=True)[1]),
        "401 Unauthorized",
        {"WWW-Authenticate": INVALID_TOKEN},
    ),
    "expired": lambda w: Case(
        check_request(make_token(plans=[w.plan], expired=True)[1]),
        "401 Unauthorized",
        {"WWW-Authenticate": INVALID_TOKEN},
    ),
    "active, matching API": lambda w: _active(w),
    "active, no matching API": lambda w: Case(
        check_request(make_token(plans=[w.plan])[1], uri="/other/x"),
        "403 Forbidden",
        {"WWW-Authenticate": INSUFFICIENT_SCOPE},
    ),
    "X-Forwarded-Uri": lambda w: Case(
        {
            "path": AUTH,
            "headers": {
                "Authorization": f"Bearer {make_token(plans=[w.plan])[1]}",
                "X-Forwarded-Uri": "/pay/charges",
            },
        },
        "200 OK",
        {"X-Token-Api": "Payments"},
    ),
    "active, hostile names": lambda w: _hostile(),
    "trailing slash": lambda w: _active(w, path=AUTH + "/"),
    "POST": lambda w: _active(w, method="POST"),
    "HEAD": lambda w: _active(w, method="HEAD"),
}


def _introspect_active(world: World) -> Case:
    token, secret = make_token(plans=[world.plan], owner="Zoë Ångström")
    return Case(
        introspect_request({"token": secret}, gateway_auth(world)),
        "200 OK",
        {"Content-Type": "application/json", "Cache-Control": "no-store"},
        {"active": True, "client_id": token.app.client_id, "sub": "Zoë Ångström"},
    )


def _beyond_content_length(world: World) -> Case:
    """PEP 3333: never read past CONTENT_LENGTH; past it here, a repeated token."""
    first = urlencode({"token": make_token()[1]})
    body = f"{first}&token={crypto.generate_token()}".encode()
    return Case(
        {
            **introspect_request({}, gateway_auth(world)),
            "body": body,
            "content_length": str(len(first)),
        },
        "200 OK",
        {},
        {"active": True},
    )


INTROSPECTION_CASES = {
    "active": _introspect_active,
    "active, credentials in the body": lambda w: Case(
        introspect_request(
            {
                "token": make_token()[1],
                "client_id": w.gateway[0].client_id,
                "client_secret": w.gateway[1],
            },
            None,
        ),
        "200 OK",
        {},
        {"active": True},
    ),
    "active, with an expiry": lambda w: Case(
        introspect_request(
            {"token": make_token(expires_at=timezone.now() + timedelta(hours=2))[1]},
            gateway_auth(w),
        ),
        "200 OK",
        {},
        {"active": True},
    ),
    "expired": lambda w: Case(
        introspect_request({"token": make_token(expired=True)[1]}, gateway_auth(w)),
        "200 OK",
        {},
        {"active": False},
    ),
    "two client authentication methods": lambda w: Case(
        introspect_request(
            {"token": make_token()[1], "client_secret": w.gateway[1]}, gateway_auth(w)
        ),
        "400 Bad Request",
        {},
        {"error": "invalid_request"},
    ),
    "unknown client": lambda w: Case(
        introspect_request({"token": make_token()[1]}, ("tpc_unknown", w.gateway[1])),
        "401 Unauthorized",
        {},
        {"error": "invalid_client"},
    ),
    "inactive": lambda w: Case(
        introspect_request({"token": make_token(revoked=True)[1]}, gateway_auth(w)),
        "200 OK",
        {},
        {"active": False},
    ),
    "unknown": lambda w: Case(
        introspect_request({"token": crypto.generate_token()}, gateway_auth(w)),
        "200 OK",
        {},
        {"active": False},
    ),
    "wrong client secret": lambda w: Case(
        introspect_request(
            {"token": make_token()[1]}, (w.gateway[0].client_id, one_char_changed(w.gateway[1]))
        ),
        "401 Unauthorized",
        {"WWW-Authenticate": 'Basic realm="token-portal"'},
        {"error": "invalid_client"},
    ),
    "client without the right": lambda w: Case(
        introspect_request({"token": make_token()[1]}, (w.outsider[0].client_id, w.outsider[1])),
        "403 Forbidden",
        {},
        {"error": "unauthorized_client"},
    ),
    "GET": lambda w: Case(
        {
            "path": INTROSPECT,
            "headers": {"Authorization": basic(*gateway_auth(w))},
        },
        "405 Method Not Allowed",
        {"Allow": "POST"},
        {"error": "invalid_request"},
    ),
    "query string": lambda w: Case(
        introspect_request({"token": "x"}, gateway_auth(w), query="token=x"),
        "400 Bad Request",
        {},
        {"error": "invalid_request"},
    ),
    "wrong content type": lambda w: Case(
        {
            **introspect_request({}, gateway_auth(w)),
            "body": json.dumps({"token": make_token()[1]}).encode(),
            "content_type": "application/json",
        },
        "400 Bad Request",
        {},
        {"error": "invalid_request"},
    ),
    "body over the limit": lambda w: Case(
        introspect_request({"token": make_token()[1], "pad": "x" * 9000}, gateway_auth(w)),
        "413 Request Entity Too Large",
        {},
        {"error": "invalid_request"},
    ),
    "missing token": lambda w: Case(
        introspect_request({}, gateway_auth(w)),
        "400 Bad Request",
        {},
        {"error": "invalid_request"},
    ),
    "content type with a charset": lambda w: Case(
        introspect_request(
            {"token": make_token()[1]},
            gateway_auth(w),
            content_type="application/x-www-form-urlencoded; charset=UTF-8",
        ),
        "200 OK",
        {},
        {"active": True},
    ),
    "body beyond Content-Length": lambda w: _beyond_content_length(w),
    "invalid Content-Length": lambda w: Case(
        introspect_request({"token": make_token()[1]}, gateway_auth(w), content_length="12x"),
        "400 Bad Request",
        {},
        {"error": "invalid_request"},
    ),
}


def _assert_expected(reply: Reply, case: Case) -> None:
    assert reply.status == case.status
    for name, value in case.headers.items():
        assert reply.header(name) == value, name
    if case.json is not None:
        body = json.loads(reply.body)
        assert {key: body.get(key) for key in case.json} == case.json


def _parity_cases():
    for prefix, cases in (
        ("gateway-auth", FORWARD_AUTH_CASES),
        ("introspect", INTROSPECTION_CASES),
    ):
        for name, case in cases.items():
            yield pytest.param(case, id=f"{prefix}: {name}")


@pytest.mark.parametrize("case", _parity_cases())
def test_the_fast_path_answers_exactly_as_djangos_full_stack(world, case):
    case = case(world)

    full = call(django_application, **case.request)
    cache.clear()  # the fast path's first answer is a cold one too
    cold = call(application, **case.request)
    warm = call(application, **case.request)

    _assert_expected(full, case)
    assert_same_answer(cold, full)
    assert_same_answer(warm, full)


def test_the_introspection_rate_limit_answers_as_djangos(world, settings, monkeypatch):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "RATE_LIMITS": {"introspect": "2/h"}}
    # One instant for every request: Retry-After, counted from it, is then the same.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_800_000_000.25))
    fast, full = fresh_applications()
    request = introspect_request({"token": make_token()[1]}, gateway_auth(world))

    replies = {}
    for name, app in (("fast", fast), ("full", full)):
        cache.clear()
        replies[name] = [call(app, **request) for _ in range(3)]

    assert [reply.status for reply in replies["fast"]] == [
        "200 OK",
        "200 OK",
        "429 Too Many Requests",
    ]
    assert replies["fast"][2].header("Retry-After") == "3600"
    for fast_reply, full_reply in zip(replies["fast"], replies["full"], strict=True):
        assert_same_answer(fast_reply, full_reply)


# --- 2. HTTPS and proxies ------------------------------------------------------------


def _active_case(world: World, endpoint: str) -> Case:
    if endpoint == "gateway-auth":
        return _active(world)
    return _introspect_active(world)


def _over_tls_proxy(request: dict) -> dict:
    """``request`` as a TLS-terminating proxy forwards it: plain HTTP, X-Forwarded-Proto."""
    return {**request, "headers": {**request["headers"], "X-Forwarded-Proto": "https"}}


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_hsts_behind_a_tls_proxy_is_the_full_stacks(world, settings, endpoint):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = False
    fast, full = fresh_applications()
    case = _active_case(world, endpoint)
    secure, plain = _over_tls_proxy(case.request), case.request

    # Secure, plain, secure again: what one scheme taught the fast path must not leak
    # into the other's answers.
    for request, hsts in ((secure, "max-age=3600; includeSubDomains"), (plain, None)) * 2:
        fast_reply, full_reply = call(fast, **request), call(full, **request)

        assert full_reply.status == "200 OK"
        assert full_reply.header("Strict-Transport-Security") == hsts
        assert_same_answer(fast_reply, full_reply)


@pytest.mark.parametrize(
    ("endpoint", "location"),
    [
        ("gateway-auth", "https://localhost/gateway/auth"),
        ("introspect", "https://localhost/oauth/introspect/"),
    ],
)
def test_plain_http_under_ssl_redirect_gets_djangos_redirect(world, settings, endpoint, location):
    settings.SECURE_SSL_REDIRECT = True
    fast, full = fresh_applications()
    case = _active_case(world, endpoint)

    fast_reply, full_reply = call(fast, **case.request), call(full, **case.request)

    assert full_reply.status == "301 Moved Permanently"
    assert full_reply.header("Location") == location
    assert_same_answer(fast_reply, full_reply)
    # The same request over TLS (the proxy says so) is answered.
    secure = _over_tls_proxy(case.request)
    fast_reply, full_reply = call(fast, **secure), call(full, **secure)
    assert full_reply.status == "200 OK"
    assert_same_answer(fast_reply, full_reply)


def test_a_check_exempt_from_the_ssl_redirect_is_answered_over_plain_http(world, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^gateway/auth"]
    fast, full = fresh_applications()

    for path in (AUTH, AUTH + "/"):
        case = _active(world, path=path)
        fast_reply, full_reply = call(fast, **case.request), call(full, **case.request)

        _assert_expected(full_reply, case)
        assert_same_answer(fast_reply, full_reply)
    # Introspection is not exempt: still redirected, by both.
    case = _introspect_active(world)
    fast_reply, full_reply = call(fast, **case.request), call(full, **case.request)
    assert full_reply.status == "301 Moved Permanently"
    assert_same_answer(fast_reply, full_reply)


@pytest.mark.parametrize(
    ("endpoint", "exempt", "location"),
    [
        ("gateway-auth", r"^gateway/auth", "https://localhost/portal/gateway/auth"),
        ("introspect", r"^oauth/introspect/", "https://localhost/portal/oauth/introspect/"),
    ],
)
def test_the_redirect_exemption_sees_the_script_name_as_django_does(
    world, settings, endpoint, exempt, location
):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [exempt]
    fast, full = fresh_applications()
    request = {**_active_case(world, endpoint).request, "script_name": "/portal"}

    fast_reply, full_reply = call(fast, **request), call(full, **request)

    # Django matches the exemptions against request.path, script name included.
    assert full_reply.status == "301 Moved Permanently"
    assert full_reply.header("Location") == location
    assert_same_answer(fast_reply, full_reply)
    # Exempted with the script name, the check is answered (by both).
    settings.SECURE_REDIRECT_EXEMPT = ["^portal/" + exempt.lstrip("^")]
    fast, full = fresh_applications()
    fast_reply, full_reply = call(fast, **request), call(full, **request)
    assert full_reply.status == "200 OK"
    assert_same_answer(fast_reply, full_reply)


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_the_redirect_exemption_sees_force_script_name_as_django_does(world, settings, endpoint):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^gateway/auth", r"^oauth/introspect/"]
    # Behind a proxy that strips the prefix: the app is told its script name this way.
    settings.FORCE_SCRIPT_NAME = "/portal"
    fast, full = fresh_applications()
    request = _active_case(world, endpoint).request

    fast_reply, full_reply = call(fast, **request), call(full, **request)

    assert full_reply.status == "301 Moved Permanently"
    assert fast_reply.status == full_reply.status
    assert_same_answer(fast_reply, full_reply)


# --- 3. security headers ---------------------------------------------------------------


# What PortalSecurityMiddleware and SecurityMiddleware give every dynamic answer.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def assert_security_headers(reply: Reply) -> None:
    expected = {**SECURITY_HEADERS, "Content-Security-Policy": content_security_policy()}
    assert {name: reply.header(name) for name in expected} == expected


@contextlib.contextmanager
def database_failing(failure: str = "query error"):
    """Every query in the block fails at the database (Django's execute_wrapper hook).

    "query error": the statement errors, as on an overloaded or broken database;
    "connection lost": it ends its own server session, as a database restart would.
    """
    failing_sql = {
        "query error": "SELECT no_such_column FROM tp_no_such_table",
        "connection lost": "SELECT pg_terminate_backend(pg_backend_pid())",
    }[failure]

    def fail(execute, sql, params, many, context):
        return execute(failing_sql, None, False, context)

    with connection.execute_wrapper(fail):
        yield


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ("gateway-auth: active", "200 OK"),
        ("gateway-auth: never issued", "401 Unauthorized"),
        ("gateway-auth: no matching API", "403 Forbidden"),
        ("gateway-auth: database down", "503 Service Unavailable"),
        ("introspect: active", "200 OK"),
        ("introspect: wrong client secret", "401 Unauthorized"),
        ("introspect: client without the right", "403 Forbidden"),
        ("introspect: database down", "503 Service Unavailable"),
    ],
)
def test_every_fast_path_answer_carries_the_security_headers(world, answer, status):
    endpoint, _, what = answer.partition(": ")
    secret = (
        crypto.generate_token() if what == "never issued" else make_token(plans=[world.plan])[1]
    )
    auth = gateway_auth(world)
    if what == "wrong client secret":
        auth = (auth[0], one_char_changed(auth[1]))
    if what == "client without the right":
        auth = (world.outsider[0].client_id, world.outsider[1])
    if endpoint == "gateway-auth":
        request = check_request(secret, uri="/other" if what == "no matching API" else "/pay")
    else:
        request = introspect_request({"token": secret}, auth)

    with database_failing() if what == "database down" else contextlib.nullcontext():
        reply = call(application, **request)

    assert reply.status == status
    assert_security_headers(reply)


# --- 4. revocation, expiry and the cache ---------------------------------------------


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_a_revoked_token_is_refused_at_once_by_the_fast_path(
    world, endpoint, django_assert_num_queries
):
    token, secret = make_token(plans=[world.plan])
    request = endpoint_request(world, endpoint, secret)
    cache.clear()  # the apps' creation left purge markers, which keep answers out of it
    assert is_accepted(call(application, **request), endpoint)
    with django_assert_num_queries(0):  # answered from the cache now
        assert is_accepted(call(application, **request), endpoint)

    services.token_revoke(token=token, actor=None, reason="leaked")

    for _ in range(2):  # the first refusal, and the one it may have cached
        refused = call(application, **request)
        if endpoint == "gateway-auth":
            assert refused.status == "401 Unauthorized"
            assert refused.header("WWW-Authenticate") == INVALID_TOKEN
            assert refused.header("X-Token-Id") is None
        else:
            assert refused.status == "200 OK"
            assert refused.body == b'{"active": false}'


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_a_cached_answer_never_outlives_the_tokens_expiry(world, monkeypatch, endpoint):
    _, secret = make_token(plans=[world.plan], expires_at=timezone.now() + timedelta(minutes=5))
    request = endpoint_request(world, endpoint, secret)
    cache.clear()
    assert is_accepted(call(application, **request), endpoint)
    assert is_accepted(call(application, **request), endpoint)  # from the cache

    later = gateway.now() + 5 * 60 + 1
    monkeypatch.setattr(gateway, "now", lambda: later)

    assert not is_accepted(call(application, **request), endpoint)


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_a_check_through_the_fast_path_records_the_last_use(world, endpoint):
    token, secret = make_token(plans=[world.plan])
    assert token.last_used_at is None
    before = timezone.now()

    assert is_accepted(call(application, **endpoint_request(world, endpoint, secret)), endpoint)

    # Committed: read back through the ORM, outside the request.
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert before <= token.last_used_at <= timezone.now()


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_with_the_cache_unreachable_checks_are_answered_from_the_database(
    world, settings, endpoint
):
    _, active = make_token(plans=[world.plan])
    _, revoked = make_token(plans=[world.plan], revoked=True)
    # A Redis no one listens on: every cache operation fails at once.
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.cache.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    fast, full = fresh_applications()

    for secret, accepted in ((active, True), (revoked, False)):
        request = endpoint_request(world, endpoint, secret)
        fast_reply, full_reply = call(fast, **request), call(full, **request)

        assert is_accepted(fast_reply, endpoint) is accepted
        assert_same_answer(fast_reply, full_reply)


@pytest.mark.parametrize("change", ["right withdrawn", "secret regenerated", "deactivated"])
def test_a_change_to_the_introspecting_client_applies_at_once(world, change):
    app, client_secret = world.gateway
    request = introspect_request({"token": make_token()[1]}, (app.client_id, client_secret))
    cache.clear()  # the apps' creation left purge markers, which keep answers out of it
    assert is_accepted(call(application, **request), "introspect")
    assert is_accepted(call(application, **request), "introspect")  # client record cached

    if change == "right withdrawn":
        app.can_introspect = False
        app.save()
    elif change == "secret regenerated":
        services.app_regenerate_secret(app=app)
    else:
        app.is_active = False
        app.save()

    refused = call(application, **request)
    expected = {
        "right withdrawn": ("403 Forbidden", "unauthorized_client"),
        "secret regenerated": ("401 Unauthorized", "invalid_client"),
        "deactivated": ("401 Unauthorized", "invalid_client"),
    }[change]
    assert (refused.status, json.loads(refused.body)["error"]) == expected


# --- 5. failures ---------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_a_database_error_in_a_cold_check_answers_503_as_django_does(world, endpoint):
    _, secret = make_token(plans=[world.plan])
    request = endpoint_request(world, endpoint, secret)

    with database_failing():
        fast_reply = call(application, **request)
        full_reply = call(django_application, **request)

    assert fast_reply.status == "503 Service Unavailable"
    assert fast_reply.header("Retry-After") == "1"
    assert_same_answer(fast_reply, full_reply)
    exposed = fast_reply.body.decode() + repr(fast_reply.headers)
    for leak in (secret, "Traceback", "tp_no_such_table", "no_such_column"):
        assert leak not in exposed
    if endpoint == "introspect":
        assert json.loads(fast_reply.body)["error"] == "temporarily_unavailable"
    else:
        assert fast_reply.body == b""


class RawMessages(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _break_unexpectedly(monkeypatch, endpoint: str, secret: str) -> None:
    """An error no one foresaw, in the worst case: its message carries the credential."""
    if endpoint == "gateway-auth":

        def broken(authorization, original_uri, path):
            raise RuntimeError(f"cannot check {authorization}")

        monkeypatch.setattr("tokens.fastpath.forward_auth_answer", broken)
        monkeypatch.setattr(forward_auth, "forward_auth_answer", broken)
    else:

        def broken(secret_or_digest, **kwargs):
            raise RuntimeError(f"cannot introspect {secret}")

        monkeypatch.setattr(gateway, "check_token", broken)
        monkeypatch.setattr(gateway, "check_digest", broken)
        monkeypatch.setattr(gateway, "check_active", broken)


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
def test_an_unexpected_error_answers_500_and_logs_no_secret(world, monkeypatch, caplog, endpoint):
    _, secret = make_token(plans=[world.plan])
    request = endpoint_request(world, endpoint, secret)
    _break_unexpectedly(monkeypatch, endpoint, secret)
    # caplog's handler sits on the root logger, behind the console handler whose filter
    # masks records in place; this one sees them as the code logged them.
    raw = RawMessages()
    logging.getLogger("tokens").addHandler(raw)

    try:
        with caplog.at_level(logging.INFO):
            reply = call(application, **request)
    finally:
        logging.getLogger("tokens").removeHandler(raw)

    assert reply.status == "500 Internal Server Error"
    # Gateways get no error page: an empty body, else the headers of Django's answer.
    assert reply.body == b""
    full_reply = call(django_application, **request)
    assert full_reply.status == reply.status
    assert reply.comparable_headers() == full_reply.comparable_headers()
    assert secret not in repr(reply.headers)
    assert_security_headers(reply)
    errors = [r for r in caplog.records if r.name == "tokens.fastpath" and r.exc_info]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert raw.messages and not any(secret in message for message in raw.messages)
    # As the project's handlers write them (masking filter, JSON formatter).
    for record in caplog.records:
        written = copy.copy(record)
        SecretMaskingFilter().filter(written)
        line = JsonFormatter().format(written)
        assert secret not in record.getMessage()
        assert secret not in line
    assert "RuntimeError" in JsonFormatter().format(copy.copy(errors[0]))
    assert request_context.get() is None  # the log context was closed all the same


@pytest.mark.parametrize("failure", ["query error", "connection lost"])
@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
@pytest.mark.parametrize("app", ["fast path", "django"])
def test_after_a_database_error_the_next_check_is_answered(world, failure, endpoint, app):
    if failure == "connection lost" and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no server session to lose")
    app = application if app == "fast path" else django_application

    def check(secret):
        return call(app, **endpoint_request(world, endpoint, secret))

    _, first = make_token(plans=[world.plan])
    _, second = make_token(plans=[world.plan])
    with database_failing(failure):
        failed = check(first)
    assert failed.status == "503 Service Unavailable"
    assert failed.header("Retry-After") == "1"

    assert is_accepted(check(second), endpoint)
    assert is_accepted(check(first), endpoint)


@pytest.mark.parametrize("app", ["fast path", "django"])
def test_a_connection_past_conn_max_age_is_closed_after_the_request(world, app):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: an in-memory SQLite database is never closed")
    app = application if app == "fast path" else django_application
    _, secret = make_token(plans=[world.plan])
    max_age = connection.settings_dict["CONN_MAX_AGE"]
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 0  # Django's default: one per request
    try:
        cache.clear()
        reply = call(app, **check_request(secret))  # a cold check: it queries

        assert reply.status == "200 OK"
        assert connection.connection is None
    finally:
        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = max_age


# --- 6. log context ------------------------------------------------------------------


def _logged_request(world: World, event: str, endpoint: str) -> tuple[object, dict]:
    """A fresh token (authz_fail is sampled per token) and a request that logs ``event``."""
    token, secret = make_token(plans=[world.plan], revoked=event == "authn_token_reuse")
    if endpoint == "gateway-auth":
        return token, check_request(secret, uri="/other/x" if event == "authz_fail" else "/pay")
    app, client_secret = world.outsider if event == "authz_fail" else world.gateway
    return token, introspect_request({"token": secret}, (app.client_id, client_secret))


@pytest.mark.parametrize("endpoint", ["gateway-auth", "introspect"])
@pytest.mark.parametrize("event", ["authz_fail", "authn_token_reuse"])
def test_security_events_carry_the_proxied_client_and_the_request_id(
    world, settings, caplog, event, endpoint
):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "TRUSTED_PROXY_COUNT": 1}
    fast, full = fresh_applications()
    headers = {
        # The left entry is the client's to forge; the proxy appended the right one.
        "X-Forwarded-For": "198.51.100.66, 203.0.113.7",
        "X-Request-ID": "gw-req.42",
    }

    def logged_by(app):
        token, request = _logged_request(world, event, endpoint)
        request["headers"].update(headers)
        cache.clear()  # a cold check
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="portal.middleware"):
            call(app, **request, remote_addr="10.0.0.2")
        records = [r for r in caplog.records if r.getMessage() == event]
        assert len(records) == 1
        return token, records[0].security

    token, fields = logged_by(fast)

    assert fields["event"] == event
    assert fields["remote_addr"] == "203.0.113.7"
    assert fields["request_id"] == "gw-req.42"
    # The refused introspection caller's 403 is about the client, not the token.
    names_token = not (endpoint == "introspect" and event == "authz_fail")
    assert fields.get("token_id") == (str(token.public_id) if names_token else None)
    assert request_context.get() is None
    _, reference = logged_by(full)
    assert {**fields, "token_id": None} == {**reference, "token_id": None}


# --- 7. other paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tokens/"),
        ("GET", "/gateway/authz"),
        ("GET", "/gateway/auth/x"),
        ("GET", "/oauth/introspect"),
        ("POST", "/oauth/token/"),
    ],
)
def test_other_paths_are_djangos_answer_untouched(world, method, path):
    fast_reply = call(application, path, method=method)
    full_reply = call(django_application, path, method=method)

    assert_same_answer(fast_reply, full_reply)
    if path == "/tokens/":
        assert full_reply.status == "302 Found"
        assert full_reply.header("Location") == "/accounts/login/?next=/tokens/"


@pytest.mark.parametrize(
    ("method", "path", "handled_by_django"),
    [
        ("GET", AUTH, False),
        ("POST", AUTH + "/", False),
        ("POST", INTROSPECT, False),
        ("GET", "/tokens/", True),
        ("GET", "/gateway/authz", True),
    ],
)
def test_only_the_gateways_endpoints_bypass_djangos_handler(world, method, path, handled_by_django):
    paths_seen = []

    def django_handler(environ, start_response):
        paths_seen.append(environ["PATH_INFO"])
        return django_application(environ, start_response)

    call(GatewayFastPath(django_handler), path, method=method)

    assert paths_seen == ([path] if handled_by_django else [])
