"""The app admin: the client secret is hashed, shown once when issued, and logged without it."""

import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.urls import reverse

from tests.factories import AppFactory, PlanFactory
from tokens.models import App

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"tpcs_[0-9A-Za-z]{43}")


def shown_secrets(response) -> list[str]:
    return SECRET.findall(response.text)


def test_adding_an_app_shows_its_secret_once_and_stores_only_the_digest(admin_client):
    plan = PlanFactory()
    response = admin_client.post(
        reverse("admin:tokens_app_add"),
        {
            "name": "Shop",
            "is_active": "on",
            "subscription_set-TOTAL_FORMS": "1",
            "subscription_set-INITIAL_FORMS": "0",
            "subscription_set-0-api": plan.api_id,
            "subscription_set-0-plan": plan.pk,
        },
    )
    assert response.status_code == 200  # the secret is in this answer, not behind a redirect
    assert "no-store" in response["Cache-Control"]
    [secret] = shown_secrets(response)
    app = App.objects.get(name="Shop")
    assert app.check_client_secret(secret)
    assert secret not in app.client_secret_digest
    assert app.subscription_set.get().plan == plan
    assert app.client_id in response.text
    entry = LogEntry.objects.get(object_id=str(app.pk), action_flag=ADDITION)
    assert secret not in entry.change_message
    # Never again: not on the change page, nor the list.
    for url in (
        reverse("admin:tokens_app_change", args=[app.pk]),
        reverse("admin:tokens_app_changelist"),
    ):
        body = admin_client.get(url).text
        assert secret not in body
        assert app.client_secret_digest not in body


def test_the_regenerate_button_confirms_then_shows_the_new_secret_once(admin_client, admin_user):
    app = AppFactory(client_secret="old-secret")
    url = reverse("admin:tokens_app_regenerate_secret", args=[app.pk])
    assert url in admin_client.get(reverse("admin:tokens_app_change", args=[app.pk])).text

    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert "stops working at once" in confirm.text
    app.refresh_from_db()
    assert app.check_client_secret("old-secret")  # a GET changes nothing

    response = admin_client.post(url)
    assert response.status_code == 200
    [secret] = shown_secrets(response)
    app.refresh_from_db()
    assert app.check_client_secret(secret)
    assert not app.check_client_secret("old-secret")
    entry = LogEntry.objects.get(object_id=str(app.pk), action_flag=CHANGE)
    assert entry.user == admin_user
    assert entry.get_change_message() == "Regenerated the client secret."
    assert secret not in entry.change_message


def test_the_regenerate_action_confirms_then_shows_each_new_secret(admin_client):
    apps = [AppFactory(client_secret="a"), AppFactory(client_secret="b")]
    data = {"action": "regenerate_secret", "_selected_action": [app.pk for app in apps]}
    changelist = reverse("admin:tokens_app_changelist")

    confirm = admin_client.post(changelist, {**data, "index": "0"})
    assert confirm.status_code == 200
    assert "2 apps" in confirm.text
    assert shown_secrets(confirm) == []

    response = admin_client.post(changelist, {**data, "post": "yes"})
    secrets = shown_secrets(response)
    assert len(secrets) == 2
    for app in apps:
        app.refresh_from_db()
        assert any(app.check_client_secret(secret) for secret in secrets)
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2


def test_the_app_list_runs_the_same_queries_for_few_or_many_apps(
    admin_client, django_assert_max_num_queries
):
    url = reverse("admin:tokens_app_changelist")
    AppFactory.create_batch(3)
    admin_client.get(url)
    with django_assert_max_num_queries(8):
        admin_client.get(url)
    AppFactory.create_batch(40)
    with django_assert_max_num_queries(8):
        admin_client.get(url)
