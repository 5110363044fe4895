"""POST /oauth/introspect/: RFC 7662 token introspection, for apps allowed to introspect."""

from datetime import timedelta

import pytest
from authlib.integrations.requests_client import OAuth2Session
from django.utils import timezone

from tests.factories import PlanFactory, make_token
from tests.oauth_helpers import make_client, post_form
from tokens import services
from tokens.gateway import check as gateway

INTROSPECT_URL = "/oauth/introspect/"


@pytest.fixture(autouse=True)
def _plain_http_on_loopback(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def gateway_client(db):
    return make_client(can_introspect=True, name="Gateway")


@pytest.fixture
def plan(db):
    return PlanFactory(name="Gold", api__name="Payments", api__base_path="/pay")


def test_active_token_gives_its_claims_apis_and_plans(live_server, transactional_db, plan):
    gateway_app, gateway_secret = make_client(can_introspect=True)
    expires_at = timezone.now() + timedelta(hours=2)
    token, secret = make_token(owner="Zoë Ångström", plans=[plan], expires_at=expires_at)

    with OAuth2Session(gateway_app.client_id, gateway_secret) as session:
        response = session.introspect_token(live_server.url + INTROSPECT_URL, token=secret)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == {
        "active": True,
        "client_id": token.app.client_id,
        "token_type": "Bearer",
        "exp": int(expires_at.timestamp()),
        "iat": int(token.created_at.timestamp()),
        "sub": "Zoë Ångström",
        "apis": [{"name": "Payments", "version": "v1", "base_path": "/pay", "plan": "Gold"}],
    }


def test_token_without_expiry_has_no_exp(client, gateway_client):
    _, secret = make_token()

    response = post_form(
        client, INTROSPECT_URL, {"token": secret}, auth=gateway_client_auth(gateway_client)
    )

    assert response.json()["active"] is True
    assert "exp" not in response.json()


def gateway_client_auth(gateway_client):
    app, secret = gateway_client
    return app.client_id, secret


@pytest.mark.parametrize("state", ["revoked", "expired", "unknown", "malformed", "empty-ish"])
def test_inactive_tokens_answer_exactly_active_false(client, gateway_client, state):
    secret = {
        "revoked": lambda: make_token(revoked=True)[1],
        "expired": lambda: make_token(expired=True)[1],
        "unknown": lambda: make_token()[1][:-1] + "Z",
        "malformed": lambda: "tpk_" + "x" * 200,
        "empty-ish": lambda: " ",
    }[state]()

    response = post_form(
        client, INTROSPECT_URL, {"token": secret}, auth=gateway_client_auth(gateway_client)
    )

    assert response.status_code == 200
    assert response.content == b'{"active": false}'


def test_a_revoked_token_turns_inactive_at_once(transactional_db, client, gateway_client):
    token, secret = make_token()
    auth = gateway_client_auth(gateway_client)
    assert post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).json()["active"]

    services.token_revoke(token=token, actor=None)

    assert post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).json() == {
        "active": False
    }


def test_an_edit_shows_in_the_next_answer(transactional_db, client, gateway_client):
    """Answers are made once per cached token state: an edit makes a new one."""
    token, secret = make_token(owner="before@example.com")
    auth = gateway_client_auth(gateway_client)
    for _ in range(2):
        assert (
            post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).json()["sub"]
            == "before@example.com"
        )

    services.token_update(
        token=token, actor=None, owner="after@example.com", extra_fields=[], plans=[],
        expected_version=token.version,
    )  # fmt: skip

    answer = post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).json()
    assert answer["sub"] == "after@example.com" and answer["apis"] == []


def test_a_cached_answer_never_outlives_the_expiry(client, gateway_client, monkeypatch):
    _, secret = make_token(expires_at=timezone.now() + timedelta(minutes=5))
    auth = gateway_client_auth(gateway_client)
    assert post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).json()["active"]

    later = gateway.now() + 5 * 60 + 1
    monkeypatch.setattr(gateway, "now", lambda: later)

    assert post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).json() == {
        "active": False
    }


@pytest.mark.parametrize("credentials", ["wrong secret", "unknown client", "none", "inactive"])
def test_bad_or_missing_credentials_get_401(client, gateway_client, credentials):
    app, app_secret = gateway_client
    _, secret = make_token()
    auth = {
        "wrong secret": (app.client_id, app_secret[:-1]),
        "unknown client": ("tpc_unknown", app_secret),
        "none": None,
        "inactive": (app.client_id, app_secret),
    }[credentials]
    if credentials == "inactive":
        app.is_active = False
        app.save()

    response = post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "active" not in response.json()


def test_apps_not_allowed_to_introspect_are_refused(db, client):
    app, app_secret = make_client(can_introspect=False)
    _, secret = make_token()

    response = post_form(
        client, INTROSPECT_URL, {"token": secret}, auth=(app.client_id, app_secret)
    )

    assert response.status_code == 403
    assert response.json()["error"] == "unauthorized_client"


def test_withdrawing_the_right_to_introspect_takes_effect_at_once(
    transactional_db, client, gateway_client
):
    app, app_secret = gateway_client
    _, secret = make_token()
    auth = (app.client_id, app_secret)
    assert post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).status_code == 200

    app.can_introspect = False
    app.save()

    assert post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).status_code == 403


def test_a_token_in_the_query_string_is_refused(client, gateway_client):
    _, secret = make_token()

    response = post_form(
        client,
        f"{INTROSPECT_URL}?token={secret}",
        {"token": secret},
        auth=gateway_client_auth(gateway_client),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert secret not in response.content.decode()


def test_missing_token_is_invalid_request(client, gateway_client):
    response = post_form(client, INTROSPECT_URL, {}, auth=gateway_client_auth(gateway_client))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_introspection_records_last_used_at_most_once_per_resolution(
    client, gateway_client, django_assert_max_num_queries
):
    token, secret = make_token()
    auth = gateway_client_auth(gateway_client)

    for _ in range(5):
        post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth)
    token.refresh_from_db()
    first_use = token.last_used_at
    with django_assert_max_num_queries(0):
        post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth)

    assert first_use is not None
    token.refresh_from_db()
    assert token.last_used_at == first_use


def test_bursts_get_429_with_retry_after(client, gateway_client, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "RATE_LIMITS": {"introspect": "5/s"}}
    _, secret = make_token()
    auth = gateway_client_auth(gateway_client)

    statuses = [
        post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth).status_code
        for _ in range(20)
    ]

    assert statuses.count(429) >= 10  # a window boundary may reset the count once
    refused = post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth)
    if refused.status_code == 429:
        assert refused["Retry-After"] == "1"
        assert refused.json()["error"] == "temporarily_unavailable"
