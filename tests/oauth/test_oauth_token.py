"""POST /oauth/token/: RFC 6749 §4.4 client credentials grant."""

import base64
from datetime import timedelta

import pytest
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from django.utils import timezone
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from tests.factories import PlanFactory
from tests.oauth_helpers import basic, make_client, post_form
from tokens import crypto
from tokens.models import AccessToken, AuditAction, TokenOrigin

TOKEN_URL = "/oauth/token/"


@pytest.fixture(autouse=True)
def _plain_http_on_loopback(monkeypatch):
    # The live server speaks plain HTTP on loopback; production runs behind TLS.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def subscribed_client(db):
    plans = [PlanFactory(), PlanFactory()]
    app, secret = make_client(plans=plans)
    return app, secret, plans


def test_client_credentials_with_http_basic_issues_an_oauth_token(
    live_server, transactional_db, subscribed_client
):
    app, secret, plans = subscribed_client
    with OAuth2Session(client=BackendApplicationClient(client_id=app.client_id)) as session:
        answer = session.fetch_token(
            token_url=live_server.url + TOKEN_URL, auth=HTTPBasicAuth(app.client_id, secret)
        )

    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 3600
    assert crypto.looks_like_token(answer["access_token"])
    token = AccessToken.objects.by_secret(answer["access_token"]).get()
    assert token.app == app
    assert token.origin == TokenOrigin.OAUTH
    assert token.grant_type == "client_credentials"
    assert {link.plan for link in token.api_links.all()} == set(plans)
    assert abs(token.expires_at - (timezone.now() + timedelta(hours=1))) < timedelta(seconds=30)
    event = token.events.get()
    assert event.action == AuditAction.CREATED
    assert event.actor_label == f"client {app.name} ({app.client_id})"
    assert answer["access_token"] not in str(event.changes)


def test_client_credentials_with_form_fields_issues_a_token(
    live_server, transactional_db, subscribed_client
):
    app, secret, _ = subscribed_client
    with AuthlibSession(
        app.client_id, secret, token_endpoint_auth_method="client_secret_post"
    ) as session:
        answer = session.fetch_token(live_server.url + TOKEN_URL, grant_type="client_credentials")

    assert AccessToken.objects.by_secret(answer["access_token"]).get().app == app


def test_token_lifetime_is_configurable(client, subscribed_client, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "OAUTH_TOKEN_LIFETIME": 120}
    app, secret, _ = subscribed_client

    response = post_form(
        client, TOKEN_URL, {"grant_type": "client_credentials"}, auth=(app.client_id, secret)
    )

    assert response.status_code == 200
    assert response.json()["expires_in"] == 120
    assert response["Cache-Control"] == "no-store"
    token = AccessToken.objects.by_secret(response.json()["access_token"]).get()
    assert (token.expires_at - token.created_at).total_seconds() == pytest.approx(120, abs=5)


def test_scope_narrows_the_token_to_some_subscribed_apis(client, subscribed_client):
    app, secret, plans = subscribed_client
    wanted = plans[1].api.base_path

    response = post_form(
        client,
        TOKEN_URL,
        {"grant_type": "client_credentials", "scope": wanted},
        auth=(app.client_id, secret),
    )

    assert response.status_code == 200
    assert response.json()["scope"] == wanted
    token = AccessToken.objects.by_secret(response.json()["access_token"]).get()
    assert [link.plan for link in token.api_links.all()] == [plans[1]]


def test_scope_outside_the_subscriptions_is_invalid_scope(client, subscribed_client):
    app, secret, _ = subscribed_client
    other_api = PlanFactory().api

    response = post_form(
        client,
        TOKEN_URL,
        {"grant_type": "client_credentials", "scope": other_api.base_path},
        auth=(app.client_id, secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert not AccessToken.objects.exists()


def test_percent_encoded_basic_credentials_are_decoded(client, subscribed_client):
    app, secret, _ = subscribed_client
    # RFC 6749 §2.3.1: the parts are form-urlencoded before base64; "_" may arrive as %5F.
    encoded = basic(app.client_id, secret).removeprefix("Basic ")
    raw = base64.b64decode(encoded).decode().replace("_", "%5F")
    header = "Basic " + base64.b64encode(raw.encode()).decode()

    response = post_form(
        client, TOKEN_URL, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "credentials",
    ["wrong secret", "unknown client", "no credentials", "inactive app"],
)
def test_bad_client_credentials_get_401_invalid_client(client, subscribed_client, credentials):
    app, secret, _ = subscribed_client
    auth = {
        "wrong secret": (app.client_id, secret + "x"),
        "unknown client": ("tpc_nobody", secret),
        "no credentials": None,
        "inactive app": (app.client_id, secret),
    }[credentials]
    if credentials == "inactive app":
        app.is_active = False
        app.save()

    response = post_form(client, TOKEN_URL, {"grant_type": "client_credentials"}, auth=auth)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert secret not in response.content.decode()
    assert not AccessToken.objects.exists()


def test_other_grant_types_are_unsupported(client, subscribed_client):
    app, secret, _ = subscribed_client

    response = post_form(
        client,
        TOKEN_URL,
        {"grant_type": "password", "username": "a", "password": "b"},
        auth=(app.client_id, secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(client, subscribed_client):
    app, secret, _ = subscribed_client

    response = post_form(client, TOKEN_URL, {}, auth=(app.client_id, secret))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_two_client_authentication_methods_at_once_are_refused(client, subscribed_client):
    app, secret, _ = subscribed_client

    response = post_form(
        client,
        TOKEN_URL,
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret},
        auth=(app.client_id, secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_an_app_without_subscriptions_gets_a_token_without_apis_or_scope(db, client):
    app, secret = make_client()

    response = post_form(
        client, TOKEN_URL, {"grant_type": "client_credentials"}, auth=(app.client_id, secret)
    )

    assert response.status_code == 200
    assert "scope" not in response.json()
    token = AccessToken.objects.by_secret(response.json()["access_token"]).get()
    assert not token.api_links.exists()
