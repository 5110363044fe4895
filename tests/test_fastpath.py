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

import io
import json
from collections import Counter
from typing import NamedTuple
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler

from portal.wsgi import application, django_application
from tests.factories import PlanFactory, make_token
from tests.oauth_helpers import FORM, basic, make_client
from tokens import crypto
from tokens.fastpath import GatewayFastPath

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
        assert isinstance(name, str) and isinstance(value, str), (name, value)
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


# --- 1. parity -------------------------------------------------------------------------


class Case(NamedTuple):
    request: dict
    status: str
    headers: dict[str, str] = {}  # expected on the answer, beyond parity
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
            {"token": make_token()[1]}, (w.gateway[0].client_id, w.gateway[1][:-1] + "x")
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
}


def _assert_expected(reply: Reply, case: Case) -> None:
    assert reply.status == case.status
    for name, value in case.headers.items():
        assert reply.header(name) == value, name
    if case.json is not None:
        body = json.loads(reply.body)
        assert {key: body.get(key) for key in case.json} == case.json


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(FORWARD_AUTH_CASES[name], id=f"gateway-auth: {name}")
        for name in FORWARD_AUTH_CASES
    ]
    + [
        pytest.param(INTROSPECTION_CASES[name], id=f"introspect: {name}")
        for name in INTROSPECTION_CASES
    ],
)
def test_the_fast_path_answers_exactly_as_djangos_full_stack(world, case):
    case = case(world)

    full = call(django_application, **case.request)
    cache.clear()  # the fast path's first answer is a cold one too
    cold = call(application, **case.request)
    warm = call(application, **case.request)

    _assert_expected(full, case)
    assert_same_answer(cold, full)
    assert_same_answer(warm, full)
