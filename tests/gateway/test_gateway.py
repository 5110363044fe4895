"""GET /gateway/auth: forward-auth for nginx auth_request, Traefik ForwardAuth, Envoy."""

from urllib.parse import unquote

import pytest

from tests.factories import ApiFactory, PlanFactory, make_token
from tokens import crypto
from tokens.gateway import paths

AUTH_URL = "/gateway/auth"


@pytest.fixture
def pay_plan(db):
    return PlanFactory(name="Gold", rate_limit=120, api__name="Payments", api__base_path="/pay")


@pytest.fixture
def pay_token(pay_plan):
    return make_token(plans=[pay_plan], owner="Ada Lovelace")


def check(client, secret=None, uri="/pay/charges", *, header="HTTP_X_ORIGINAL_URI", **extra):
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    if uri is not None:
        extra[header] = uri
    return client.get(AUTH_URL, **extra)


def test_valid_token_for_the_api_answers_200_with_identifying_headers(client, pay_token):
    token, secret = pay_token

    response = check(client, secret)

    assert response.status_code == 200
    assert response["X-Token-Id"] == str(token.public_id)
    assert response["X-Token-Client-Id"] == token.app.client_id
    assert unquote(response["X-Token-App"]) == token.app.name
    assert unquote(response["X-Token-Owner"]) == "Ada Lovelace"
    assert response["X-Token-Api"] == "Payments"
    assert response["X-Token-Plan"] == "Gold"
    assert response["X-Token-Rate-Limit"] == "120"
    assert response["Cache-Control"] == "no-store"


def test_traefik_sends_the_uri_as_x_forwarded_uri(client, pay_token):
    response = check(client, pay_token[1], header="HTTP_X_FORWARDED_URI")

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "delete", "head", "options", "patch"])
def test_any_method_of_the_original_request_is_checked(client, pay_token, method):
    response = getattr(client, method)(
        AUTH_URL,
        HTTP_AUTHORIZATION=f"Bearer {pay_token[1]}",
        HTTP_X_ORIGINAL_URI="/pay/x",
    )

    assert response.status_code == 200


@pytest.mark.parametrize("authorization", [None, "Basic dXNlcjpwYXNz", "", "Token abc"])
def test_missing_bearer_token_gets_401_with_a_bare_challenge(client, authorization):
    extra = {"HTTP_X_ORIGINAL_URI": "/pay"}
    if authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization

    response = client.get(AUTH_URL, **extra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="token-portal"'


@pytest.mark.parametrize("state", ["unknown", "typo", "malformed", "expired", "revoked", "empty"])
def test_invalid_tokens_get_401_invalid_token(client, pay_plan, state):
    secret = {
        # Well formed, valid checksum, never issued.
        "unknown": crypto.generate_token,
        # One character changed: the checksum no longer matches.
        "typo": lambda: _one_char_changed(make_token(plans=[pay_plan])[1]),
        "malformed": lambda: "tpk_short",
        "expired": lambda: make_token(plans=[pay_plan], expired=True)[1],
        "revoked": lambda: make_token(plans=[pay_plan], revoked=True)[1],
        "empty": lambda: "",
    }[state]()

    response = check(client, secret)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="token-portal", error="invalid_token"'


def _one_char_changed(secret: str) -> str:
    last = secret[-1]
    return secret[:-1] + ("1" if last == "0" else "0")


def test_bearer_scheme_is_case_insensitive(client, pay_token):
    response = client.get(
        AUTH_URL, HTTP_AUTHORIZATION=f"bearer   {pay_token[1]}", HTTP_X_ORIGINAL_URI="/pay"
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("/pay", 200),
        ("/pay/", 200),
        ("/pay/charges/42?limit=1", 200),
        ("/pay?next=/admin", 200),
        ("//pay//charges", 200),
        ("/pay/admin", 403),  # a longer base path belongs to another API
        ("/pay/admin/users", 403),
        ("/payments", 403),  # prefixes match on segment boundaries only
        ("/other", 403),  # no API at all
        ("/", 403),
        ("/other?/pay", 403),
        ("/pay/admin/../charges", 200),
        ("/pay/../pay/admin", 403),
        ("/pay/%2e%2e/secret", 403),
        ("/pay/..;/secret", 403),
        ("/pay%2F..%2Fsecret", 403),
        ("/pay/%2F/x", 403),
        ("/pay/%252e%252e/x", 403),
        ("/pay\\..\\secret", 403),
        ("/pay/%ff", 403),
        ("pay/charges", 403),
        ("", 403),
        (None, 403),
        ("http://api.example.test/pay/x?y=1", 200),
    ],
)
def test_the_longest_base_path_prefix_decides_the_scope(client, pay_token, uri, status):
    ApiFactory(name="Payments admin", base_path="/pay/admin")
    ApiFactory(name="Secret", base_path="/secret")

    response = check(client, pay_token[1], uri)

    assert response.status_code == status
    if status == 403:
        assert response["WWW-Authenticate"] == (
            'Bearer realm="token-portal", error="insufficient_scope"'
        )


def test_the_plan_header_names_the_plan_of_the_matched_api(client, pay_plan):
    admin_plan = PlanFactory(name="Staff", api__name="Admin", api__base_path="/pay/admin")
    _, secret = make_token(plans=[pay_plan, admin_plan])

    response = check(client, secret, "/pay/admin/users")

    assert response.status_code == 200
    assert response["X-Token-Api"] == "Admin"
    assert response["X-Token-Plan"] == "Staff"


@pytest.mark.parametrize("owner", ["Zoë Ångström", "Evil\r\nSet-Cookie: x=1", "100% 中文"])
def test_owner_values_are_percent_encoded_never_a_500(client, pay_plan, owner):
    _, secret = make_token(plans=[pay_plan], owner=owner)

    response = check(client, secret)

    assert response.status_code == 200
    assert response["X-Token-Owner"].isascii()
    assert "\n" not in response["X-Token-Owner"]
    assert unquote(response["X-Token-Owner"]) == owner


def test_the_url_route_answers_the_same_without_the_fast_path(client, pay_token, settings):
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "tokens.fastpath.GatewayFastPathMiddleware"
    ]

    assert check(client, pay_token[1]).status_code == 200
    assert check(client, "tpk_bad").status_code == 401


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/a/b/../c", "/a/c"),
        ("/a/./b", "/a/b"),
        ("/a//b/", "/a/b"),
        ("/a/b/..", "/a"),
        ("/../../a", None),  # nginx answers 400: above the root
        ("/a/%62", "/a/b"),
        ("/a/b?c#d", "/a/b"),
        ("/a/b#frag?x", "/a/b"),
        ("/a/%2e%2E/b", None),  # encoded dots: not every server decodes before resolving
        ("/admin/users/..;/..;/pay/x", None),  # nginx routes it under /admin, Tomcat /pay
        ("/a/%2e%2e;/b", None),
        ("/a/..;jsessionid=1/b", None),
        ("/a%2fb", None),
        ("/a/%5C/b", None),
        ("/a\\b", None),
        ("/a/%00", None),
        ("/a/%", None),
        ("/a/%2", None),
        ("/a/%c0%ae%c0%ae/b", None),  # overlong UTF-8 for "..": not UTF-8
        ("/a/%252e%252e/b", None),
        ("/a/\uff0e\uff0e/b", None),  # fullwidth dots
        ("http://example.com:8080/a/../b?x", "/b"),
        ("http://[/pay", None),
        ("a/b", None),
    ],
)
def test_normalise_path(uri, path):
    assert paths.normalise_path(uri) == path
