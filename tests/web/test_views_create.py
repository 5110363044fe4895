"""New access token: the form, the secret shown exactly once, and no second token on re-POST."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    XSS,
    XSS_ESCAPED,
    AppFactory,
    SubscriptionFactory,
    api_with_plans,
    assert_escaped,
    extra_fields_data,
    plans_data,
)
from tokens import crypto
from tokens.models import AccessToken, AuditAction, TokenApi, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

CREATE_URL = reverse("tokens:create")


def create_data(app, *, owner="Ada Lovelace", nonce="nonce-1", subscriptions=True, **extra):
    data = {"app": str(app.pk), "owner": owner, "expires_on": "", "nonce": nonce, "create": "1"}
    if subscriptions:
        data["use_subscriptions"] = "on"
    data.update(extra_fields_data())
    data.update(plans_data())
    data.update(extra)
    return data


def _secret_on(html: str) -> str:
    return re.search(r'id="new-token-secret"[^>]*value="([^"]+)"', html).group(1)


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _links(token) -> dict[int, int]:
    return dict(TokenApi.objects.filter(token=token).values_list("api_id", "plan_id"))


# --- The form -------------------------------------------------------------------------------


def test_form_offers_active_apps_owner_expiry_extra_fields_and_plans(portal_admin_client):
    active = AppFactory(name="Acme")
    AppFactory(name="Retired", is_active=False)
    api_with_plans("Free", "Gold", name="Payments")

    response = portal_admin_client.get(CREATE_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(rf'<option value="{active.pk}">Acme</option>', html)
    assert "Retired" not in html
    for name in ("owner", "expires_on", "extra-0-name", "nonce", "use_subscriptions"):
        assert f'name="{name}"' in html
    assert re.search(r'name="use_subscriptions" id="id_use_subscriptions" checked', html)
    assert "Payments v1" in html
    assert "Add extra field" in html


def test_form_carries_each_apps_subscriptions_for_the_plan_defaults(portal_admin_client):
    sub = SubscriptionFactory()

    html = portal_admin_client.get(CREATE_URL).content.decode()

    data = json.loads(re.search(r'id="app-subscriptions"[^>]*>(.*?)</script>', html).group(1))
    assert data[str(sub.app_id)] == {str(sub.api_id): sub.plan_id}


def test_each_form_gets_a_fresh_nonce(portal_admin_client):
    nonces = {
        re.search(
            r'name="nonce" value="([^"]+)"', portal_admin_client.get(CREATE_URL).content.decode()
        ).group(1)
        for _ in range(3)
    }

    assert len(nonces) == 3


def test_create_page_query_count_does_not_grow_with_apps_and_apis(portal_admin_client):
    SubscriptionFactory()
    portal_admin_client.get(CREATE_URL)
    with CaptureQueriesContext(connection) as few:
        portal_admin_client.get(CREATE_URL)

    for _ in range(8):
        SubscriptionFactory(plan=api_with_plans("Free", "Gold")[1][0])
    with CaptureQueriesContext(connection) as many:
        portal_admin_client.get(CREATE_URL)

    assert len(many.captured_queries) == len(few.captured_queries)


# --- Creating -------------------------------------------------------------------------------


def test_created_token_secret_is_shown_exactly_once(portal_admin_client, portal_admin):
    app = AppFactory(name="Acme")

    response = portal_admin_client.post(CREATE_URL, create_data(app), REMOTE_ADDR="203.0.113.5")

    assert response.status_code == 200
    html = response.content.decode()
    secret = _secret_on(html)
    assert crypto.looks_like_token(secret)
    assert html.count(secret) == 1
    assert "It is shown only this once" in html
    assert 'data-copy-target="new-token-secret"' in html
    assert "no-store" in response["Cache-Control"]
    token = AccessToken.objects.get()
    assert token.digest == crypto.digest(secret)
    assert (token.app, token.owner, token.origin) == (app, "Ada Lovelace", TokenOrigin.PORTAL)
    assert token.created_by == portal_admin
    assert token.expires_at is None
    event = token.events.get()
    assert (event.action, event.actor, event.remote_addr) == (
        AuditAction.CREATED,
        portal_admin,
        "203.0.113.5",
    )
    assert token.get_absolute_url() in html


def test_the_secret_is_not_in_a_url_or_cookie(portal_admin_client):
    response = portal_admin_client.post(CREATE_URL, create_data(AppFactory()))
    secret = _secret_on(response.content.decode())

    assert secret not in response.wsgi_request.get_full_path()
    assert not any(secret in morsel.value for morsel in response.cookies.values())
    assert not any(secret in value for _, value in response.items())


def test_a_second_post_of_the_same_form_creates_no_second_token(portal_admin_client):
    app = AppFactory()
    first = portal_admin_client.post(CREATE_URL, create_data(app, nonce="abc123"))
    secret = _secret_on(first.content.decode())
    token = AccessToken.objects.get()

    again = portal_admin_client.post(CREATE_URL, create_data(app, nonce="abc123"))

    assert AccessToken.objects.count() == 1
    assert again.status_code == 302
    assert again.url == token.get_absolute_url()
    assert secret not in again.content.decode()
    assert any("shown once and cannot be shown again" in m for m in _messages(again))
    followed = portal_admin_client.get(again.url).content.decode()
    assert secret not in followed


def test_a_new_form_creates_a_new_token(portal_admin_client):
    app = AppFactory()

    portal_admin_client.post(CREATE_URL, create_data(app, nonce="one"))
    portal_admin_client.post(CREATE_URL, create_data(app, nonce="two"))

    assert AccessToken.objects.count() == 2


def test_plans_default_to_the_apps_subscriptions(portal_admin_client):
    app = AppFactory()
    sub_a = SubscriptionFactory(app=app)
    sub_b = SubscriptionFactory(app=app)
    _, (other,) = api_with_plans("Other")

    # The selects are ignored while "Use the app's subscriptions" is checked.
    portal_admin_client.post(CREATE_URL, create_data(app, **plans_data([other])))

    token = AccessToken.objects.get()
    assert _links(token) == {sub_a.api_id: sub_a.plan_id, sub_b.api_id: sub_b.plan_id}


def test_chosen_plans_replace_the_subscriptions_when_unchecked(portal_admin_client):
    app = AppFactory()
    SubscriptionFactory(app=app)
    pay, (free, gold) = api_with_plans("Free", "Gold")

    portal_admin_client.post(
        CREATE_URL, create_data(app, subscriptions=False, **plans_data([gold]))
    )

    assert _links(AccessToken.objects.get()) == {pay.pk: gold.pk}


def test_extra_fields_and_expiry_are_saved(portal_admin_client):
    day = timezone.localdate() + timedelta(days=30)
    data = create_data(AppFactory(), expires_on=day.isoformat())
    data.update(extra_fields_data([("Ticket", "SUP-1"), ("Env", "prod")]))

    portal_admin_client.post(CREATE_URL, data)

    token = AccessToken.objects.get()
    assert token.extra_fields == [["Ticket", "SUP-1"], ["Env", "prod"]]
    assert timezone.localtime(token.expires_at).date() == day


def test_add_extra_field_without_javascript_adds_a_row_and_creates_nothing(portal_admin_client):
    data = create_data(AppFactory(), owner="Typed")
    data.update(extra_fields_data([("Env", "prod")]))
    data["add_extra_field"] = "1"
    del data["create"]

    response = portal_admin_client.post(CREATE_URL, data)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="extra-1-name"' in html
    assert re.search(r'name="extra-0-name"[^>]*value="Env"', html)
    assert re.search(r'name="nonce" value="nonce-1"', html)
    assert not AccessToken.objects.exists()


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"app": ""}, "This field is required.", id="no-app"),
        pytest.param({"app": "abc"}, "Select a valid choice", id="app-garbage"),
        pytest.param({"app": "999999"}, "Select a valid choice", id="app-unknown"),
        pytest.param({"owner": ""}, "This field is required.", id="no-owner"),
        pytest.param({"owner": "x" * 201}, "at most 200 characters", id="owner-too-long"),
        pytest.param({"owner": "a\x1bb"}, "control or invisible characters", id="owner-escape"),
        pytest.param({"owner": "a\x00b"}, "Null characters are not allowed", id="owner-nul"),
        pytest.param({"expires_on": "2001-01-01"}, "must not be in the past", id="past"),
        pytest.param({"expires_on": "2026-02-30"}, "Enter a valid date", id="no-such-day"),
        pytest.param({"expires_on": "soon"}, "Enter a valid date", id="not-a-date"),
        pytest.param(
            extra_fields_data([("Env", "a"), ("ENV", "b")]), "appears twice", id="duplicate"
        ),
        pytest.param(
            {"extra-TOTAL_FORMS": "oops"},
            "ManagementForm data is missing or has been tampered with",
            id="management-form",
        ),
    ],
)
def test_bad_input_is_a_form_error_and_no_token_is_created(portal_admin_client, change, error):
    data = create_data(AppFactory())
    data.update(change)

    response = portal_admin_client.post(CREATE_URL, data)

    assert response.status_code == 400
    html = response.content.decode()
    assert "The token was not created: please correct the errors below." in html
    assert error in html
    assert not AccessToken.objects.exists()
    assert 'id="new-token-secret"' not in html


def test_an_inactive_app_is_refused(portal_admin_client):
    response = portal_admin_client.post(CREATE_URL, create_data(AppFactory(is_active=False)))

    assert response.status_code == 400
    assert not AccessToken.objects.exists()


def test_a_plan_of_another_api_is_refused(portal_admin_client):
    pay, _ = api_with_plans("Free")
    _, (foreign,) = api_with_plans("Gold")
    data = create_data(AppFactory(), subscriptions=False)
    data[f"api_{pay.pk}"] = str(foreign.pk)

    response = portal_admin_client.post(CREATE_URL, data)

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not AccessToken.objects.exists()


def test_after_a_refused_form_the_same_nonce_still_creates_once(portal_admin_client):
    app = AppFactory()
    portal_admin_client.post(CREATE_URL, create_data(app, owner="", nonce="n1"))

    created = portal_admin_client.post(CREATE_URL, create_data(app, nonce="n1"))
    again = portal_admin_client.post(CREATE_URL, create_data(app, nonce="n1"))

    assert created.status_code == 200
    assert again.status_code == 302
    assert AccessToken.objects.count() == 1


# --- HTML escaping --------------------------------------------------------------------------


def test_user_text_is_escaped_on_the_form_and_the_created_page(portal_admin_client):
    app = AppFactory(name=f"App {XSS}")
    api_with_plans(f"Plan {XSS}", name=f"API {XSS}")

    form = portal_admin_client.get(CREATE_URL).content.decode()
    data = create_data(app, owner=f"Owner {XSS}")
    data.update(extra_fields_data([(f"Name {XSS}", f"Value {XSS}")]))
    created = portal_admin_client.post(CREATE_URL, data).content.decode()

    assert_escaped(form)
    assert f"App {XSS_ESCAPED}" in form
    assert f"Plan {XSS_ESCAPED}" in form
    assert_escaped(created)
    assert f"Access token for Owner {XSS_ESCAPED} (App {XSS_ESCAPED})" in created
    assert AccessToken.objects.get().owner == f"Owner {XSS}"


def test_user_input_is_escaped_when_a_refused_form_comes_back(portal_admin_client):
    data = create_data(AppFactory(), owner=f"Owner {XSS}", expires_on="2001-01-01", nonce=XSS)
    data.update(extra_fields_data([(f"Name {XSS}", f"Value {XSS}")]))

    response = portal_admin_client.post(CREATE_URL, data)

    assert response.status_code == 400
    html = response.content.decode()
    assert_escaped(html)
    assert f'value="Owner {XSS_ESCAPED}"' in html
    assert f'name="nonce" value="{XSS_ESCAPED}"' in html
