"""POST /oauth/revoke/: RFC 7009 token revocation by the token's own client."""

import pytest
from authlib.integrations.requests_client import OAuth2Session

from tests.factories import PlanFactory, make_token
from tests.oauth_helpers import make_client, post_form
from tokens.gateway import check as gateway
from tokens.models import AuditAction, TokenOrigin, TokenStatus

REVOKE_URL = "/oauth/revoke/"


@pytest.fixture(autouse=True)
def _plain_http_on_loopback(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def owner_client(db):
    return make_client(plans=[PlanFactory()])


@pytest.fixture
def oauth_token(owner_client):
    app, _ = owner_client
    return make_token(app=app, origin=TokenOrigin.OAUTH, plans=[app.subscription_set.get().plan])


def _session(app, secret, method="client_secret_basic"):
    return OAuth2Session(app.client_id, secret, token_endpoint_auth_method=method)


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_client_revokes_its_own_token(
    live_server, transactional_db, owner_client, oauth_token, auth_method
):
    app, secret = owner_client
    token, token_secret = oauth_token
    assert gateway.check_token(token_secret) is not None  # now cached as active

    with _session(app, secret, auth_method) as session:
        response = session.revoke_token(
            live_server.url + REVOKE_URL, token=token_secret, token_type_hint="access_token"
        )

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.status == TokenStatus.REVOKED
    assert gateway.check_token(token_secret) is None
    event = token.events.get(action=AuditAction.REVOKED)
    assert event.actor_label == f"client {app.name} ({app.client_id})"
    assert event.remote_addr == "127.0.0.1"
    assert token_secret not in str(event.changes)


def test_client_can_revoke_a_portal_issued_token_of_its_app(client, owner_client):
    app, secret = owner_client
    token, token_secret = make_token(app=app)

    response = post_form(client, REVOKE_URL, {"token": token_secret}, auth=(app.client_id, secret))

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.status == TokenStatus.REVOKED


@pytest.mark.parametrize("hint", ["refresh_token", "id_token", "", "x" * 300])
def test_a_wrong_or_unknown_hint_is_ignored(client, owner_client, oauth_token, hint):
    app, secret = owner_client
    token, token_secret = oauth_token

    response = post_form(
        client,
        REVOKE_URL,
        {"token": token_secret, "token_type_hint": hint},
        auth=(app.client_id, secret),
    )

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.status == TokenStatus.REVOKED


def test_one_client_can_never_revoke_another_clients_token(
    live_server, transactional_db, owner_client, oauth_token
):
    token, token_secret = oauth_token
    intruder, intruder_secret = make_client()

    with _session(intruder, intruder_secret) as session:
        response = session.revoke_token(live_server.url + REVOKE_URL, token=token_secret)

    # 200 without effect: an error would tell the intruder that the token exists.
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.status == TokenStatus.ACTIVE
    assert not token.events.filter(action=AuditAction.REVOKED).exists()
    assert gateway.check_token(token_secret) is not None


@pytest.mark.parametrize("value", ["unknown", "malformed", "already revoked", "expired"], ids=str)
def test_unknown_malformed_or_dead_tokens_answer_200(client, owner_client, value):
    app, secret = owner_client
    token_secret = {
        "unknown": lambda: make_token(app=make_client()[0])[1][:-1] + "A",
        "malformed": lambda: "not-a-token",
        "already revoked": lambda: make_token(app=app, revoked=True)[1],
        "expired": lambda: make_token(app=app, expired=True)[1],
    }[value]()

    response = post_form(client, REVOKE_URL, {"token": token_secret}, auth=(app.client_id, secret))

    assert response.status_code == 200


def test_revoking_twice_writes_one_audit_event(client, owner_client, oauth_token):
    app, secret = owner_client
    token, token_secret = oauth_token

    for _ in range(2):
        response = post_form(
            client, REVOKE_URL, {"token": token_secret}, auth=(app.client_id, secret)
        )
        assert response.status_code == 200

    assert token.events.filter(action=AuditAction.REVOKED).count() == 1


@pytest.mark.parametrize("credentials", ["wrong secret", "unknown client", "none"])
def test_bad_client_credentials_get_401(client, owner_client, oauth_token, credentials):
    app, secret = owner_client
    token, token_secret = oauth_token
    auth = {
        "wrong secret": (app.client_id, "tpcs_wrong"),
        "unknown client": ("tpc_unknown", secret),
        "none": None,
    }[credentials]

    response = post_form(client, REVOKE_URL, {"token": token_secret}, auth=auth)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    token.refresh_from_db()
    assert token.status == TokenStatus.ACTIVE


def test_missing_token_is_invalid_request(client, owner_client):
    app, secret = owner_client

    response = post_form(client, REVOKE_URL, {}, auth=(app.client_id, secret))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_bursts_get_429_with_retry_after(client, owner_client, oauth_token, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "RATE_LIMITS": {"revoke": "3/m"}}
    app, secret = owner_client
    _, token_secret = oauth_token

    statuses = [
        post_form(
            client, REVOKE_URL, {"token": token_secret}, auth=(app.client_id, secret)
        ).status_code
        for _ in range(3)
    ]
    refused = post_form(client, REVOKE_URL, {"token": token_secret}, auth=(app.client_id, secret))

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"] == "temporarily_unavailable"


def test_a_failed_cache_purge_is_reported_and_a_retry_purges_again(
    transactional_db, client, owner_client, oauth_token, monkeypatch
):
    """The revoke commits; the client hears 503 and retries; the retry purges the cache."""
    from tokens.gateway import cache

    app, secret = owner_client
    token, token_secret = oauth_token
    assert gateway.check_token(token_secret) is not None  # cached as active
    real_set = cache.cache.set

    def unreachable(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache.cache, "set", unreachable)
    monkeypatch.setattr(cache.time, "sleep", lambda seconds: None)
    failed = post_form(client, REVOKE_URL, {"token": token_secret}, auth=(app.client_id, secret))
    assert failed.status_code == 503
    assert failed["Retry-After"] == "1"
    token.refresh_from_db()
    assert token.status == TokenStatus.REVOKED

    monkeypatch.setattr(cache.cache, "set", real_set)
    retried = post_form(client, REVOKE_URL, {"token": token_secret}, auth=(app.client_id, secret))

    assert retried.status_code == 200
    assert gateway.check_token(token_secret) is None
