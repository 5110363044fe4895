"""Management commands: create_app (JSON credentials once) and seed_demo (a demo platform)."""

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests.factories import ApiFactory, AppFactory, PlanFactory
from tokens import crypto
from tokens.models import (
    AccessToken,
    Api,
    App,
    AuditEvent,
    Plan,
    Subscription,
    TokenApi,
    TokenOrigin,
    TokenStatus,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def create_app(*args) -> dict:
    out = StringIO()
    call_command("create_app", *args, stdout=out)
    return json.loads(out.getvalue())


# --- create_app -----------------------------------------------------------------------------


def test_create_app_prints_one_json_object_with_the_credentials():
    out = StringIO()
    call_command("create_app", "--name", "Acme Checkout", stdout=out)

    printed = json.loads(out.getvalue())  # the whole output is one JSON object
    app = App.objects.get(name="Acme Checkout")
    assert printed["name"] == "Acme Checkout"
    assert printed["client_id"] == app.client_id
    assert printed["client_secret"].startswith(crypto.CLIENT_SECRET_PREFIX)
    assert printed["can_introspect"] is False
    assert printed["subscriptions"] == []
    assert app.check_client_secret(printed["client_secret"])
    assert app.client_secret_digest == crypto.digest(printed["client_secret"])


def test_create_app_stores_no_client_secret():
    printed = create_app("--name", "Acme")

    row = App.objects.filter(name="Acme").values().get()
    assert not any(printed["client_secret"] in str(value) for value in row.values())


def test_create_app_subscribe_creates_missing_apis_and_plans():
    printed = create_app(
        "--name", "Acme", "--subscribe", "/payments:Gold", "--subscribe", "/orders/v2:Business"
    )

    payments = Api.objects.get(base_path="/payments")
    orders = Api.objects.get(base_path="/orders/v2")
    assert Plan.objects.filter(api=payments, name="Gold").exists()
    assert Plan.objects.filter(api=orders, name="Business").exists()
    app = App.objects.get(name="Acme")
    assert {(s.api.base_path, s.plan.name) for s in app.subscription_set.all()} == {
        ("/payments", "Gold"),
        ("/orders/v2", "Business"),
    }
    assert printed["subscriptions"] == [
        {"api": "/payments", "plan": "Gold"},
        {"api": "/orders/v2", "plan": "Business"},
    ]


def test_create_app_subscribe_reuses_existing_apis_and_plans():
    api = ApiFactory(base_path="/payments", name="Payments")
    gold = PlanFactory(api=api, name="Gold")

    create_app("--name", "Acme", "--subscribe", "/payments:Gold")

    assert Api.objects.count() == 1
    assert Plan.objects.count() == 1
    assert Subscription.objects.get(app__name="Acme").plan == gold


def test_create_app_can_introspect():
    printed = create_app("--name", "Gateway", "--can-introspect")

    assert printed["can_introspect"] is True
    assert App.objects.get(name="Gateway").can_introspect


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "   "], "--name must not be empty"),
        (["--name", "A", "--subscribe", "payments-gold"], "expected API_BASE_PATH:PLAN_NAME"),
        (["--name", "A", "--subscribe", "/payments:"], "expected API_BASE_PATH:PLAN_NAME"),
        (["--name", "A", "--subscribe", ":Gold"], "expected API_BASE_PATH:PLAN_NAME"),
        (["--name", "A", "--subscribe", "payments:Gold"], "base path starts with"),
        (["--name", "A", "--subscribe", "/pay ments:Gold"], "base path starts with"),
        (
            ["--name", "A", "--subscribe", "/pay:Gold", "--subscribe", "/pay:Free"],
            "one plan per API",
        ),
        (["--name", "x" * 101], "at most 100 characters"),
        (["--name", "A\x00B"], "control characters"),
        (["--name", "A", "--subscribe", "/pay:" + "P" * 101], "at most 100 characters"),
        (["--name", "A", "--subscribe", "/" + "p" * 200 + ":Gold"], "at most 200 characters"),
        (["--name", "A", "--subscribe", "/pay:Go\x00ld"], "control characters"),
    ],
)
def test_create_app_refuses_bad_input_with_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_app", *args, stdout=StringIO())

    assert not App.objects.exists()
    assert not Api.objects.exists()


def test_create_app_names_a_new_api_after_its_base_path_within_the_name_limit():
    create_app("--name", "Acme", "--subscribe", "/" + "very-long-segment/" * 10 + ":Gold")

    api = Api.objects.get()
    assert api.name.startswith("Very-Long-Segment")
    assert len(api.name) <= Api._meta.get_field("name").max_length


def test_create_app_requires_a_name():
    with pytest.raises(CommandError, match="--name"):
        call_command("create_app", stdout=StringIO())


def test_create_app_refuses_a_taken_name_and_creates_nothing():
    AppFactory(name="Acme")

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_app", "--name", "Acme", "--subscribe", "/new:Gold", stdout=StringIO())

    assert App.objects.filter(name="Acme").count() == 1
    assert not Api.objects.filter(base_path="/new").exists()


# --- seed_demo ------------------------------------------------------------------------------


@pytest.fixture
def allow_demo(monkeypatch):
    monkeypatch.setenv("TOKEN_PORTAL_ALLOW_DEMO", "1")


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo", *args, "--quiet-login", stdout=out)
    return out.getvalue()


def _counts():
    return {
        model.__name__: model.objects.count()
        for model in (Api, Plan, App, Subscription, AccessToken, TokenApi, AuditEvent)
    } | {"User": get_user_model().objects.count()}


def test_seed_demo_refuses_known_passwords_outside_debug(settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.delenv("TOKEN_PORTAL_ALLOW_DEMO", raising=False)

    with pytest.raises(CommandError, match="DJANGO_DEBUG=0"):
        call_command("seed_demo", stdout=StringIO())

    assert not AccessToken.objects.exists()


@pytest.mark.usefixtures("allow_demo")
def test_seed_demo_fills_every_status_and_origin():
    output = seed()

    tokens = list(AccessToken.objects.all())
    assert f"Demo platform ready: {len(tokens)} tokens." in output
    assert {t.status for t in tokens} == set(TokenStatus)
    assert {t.origin for t in tokens} == set(TokenOrigin)
    assert Api.objects.count() >= 2
    assert App.objects.filter(can_introspect=True).exists()
    assert all(t.events.exists() for t in tokens)
    assert any(t.extra_fields for t in tokens)
    assert AuditEvent.objects.filter(action="edited").exists()


@pytest.mark.usefixtures("allow_demo")
def test_seed_demo_logins_belong_to_the_two_groups():
    seed()

    User = get_user_model()
    admin, support = User.objects.get(username="admin"), User.objects.get(username="support")
    assert list(admin.groups.values_list("name", flat=True)) == ["Portal administrators"]
    assert list(support.groups.values_list("name", flat=True)) == ["Support staff"]
    assert admin.has_perm("tokens.change_accesstoken")
    assert not support.has_perm("tokens.change_accesstoken")


@pytest.mark.usefixtures("allow_demo")
def test_seed_demo_token_links_hold_plans_of_their_own_api():
    seed()

    assert TokenApi.objects.exists()
    for link in TokenApi.objects.select_related("plan"):
        assert link.plan.api_id == link.api_id


@pytest.mark.usefixtures("allow_demo")
def test_seed_demo_is_idempotent():
    first_output = seed()
    after_first = _counts()

    second_output = seed()

    assert _counts() == after_first
    assert "client_secret=" in first_output
    assert "client_secret=" not in second_output  # the gateway secret is shown once


# The bulk path tunes SQLite with PRAGMAs that cannot run inside a transaction, as the
# command itself never does: run it as manage.py would, outside the test's transaction.
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("allow_demo")
def test_seed_demo_tokens_scales_to_exactly_n():
    seed("--tokens", "250")

    assert AccessToken.objects.count() == 250
    assert {t.status for t in AccessToken.objects.all()} == set(TokenStatus)
    bulk = AccessToken.objects.filter(events__actor_label="seed_demo")
    assert bulk.exists()
    assert all(len(t.digest) == 64 for t in bulk)
    for link in TokenApi.objects.select_related("plan"):
        assert link.plan.api_id == link.api_id

    seed("--tokens", "100")  # fewer than there are: nothing to add
    assert AccessToken.objects.count() == 250


@pytest.mark.usefixtures("allow_demo")
def test_seed_demo_refuses_a_negative_token_count():
    with pytest.raises(CommandError, match="zero or more"):
        seed("--tokens", "-1")

    assert not AccessToken.objects.exists()
