"""Admin under faults: a pasted token never lands in django_admin_log, and a purge of the
gateways' cache that fails after a revoke or a save is said on the page, never a 500;
running the same revoke or save again purges again."""

import io
import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from tests.factories import AppFactory, PlanFactory, make_token
from tokens import crypto
from tokens.gateway.cache import CATALOGUE_VERSION_KEY, PURGED, client_cache_key, token_cache_key
from tokens.models import Api, App, Plan

CHANGELIST = "admin:tokens_accesstoken_changelist"


def revoke_url(token):
    return reverse("admin:tokens_accesstoken_revoke", args=[token.pk])


def change_url(token):
    return reverse("admin:tokens_accesstoken_change", args=[token.pk])


def post_action(client, tokens, **extra):
    data = {"action": "revoke_selected", "_selected_action": [t.pk for t in tokens], **extra}
    return client.post(reverse(CHANGELIST), data)


def message_texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def dumped() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


# A pasted token in the revoke reason.


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["page", "action"])
def test_a_token_pasted_as_the_reason_is_in_no_admin_log_entry_history_page_or_dump(
    support_client, how
):
    token, _ = make_token()
    pasted = crypto.generate_token()
    reason = f"customer pasted api_key_{pasted} in a ticket (t%3D{pasted})"
    if how == "page":
        response = support_client.post(revoke_url(token), {"reason": reason})
    else:
        response = post_action(support_client, [token], post="yes", reason=reason)
    assert response.status_code == 302
    entry = LogEntry.objects.get(object_id=str(token.pk), action_flag=CHANGE)
    assert "customer pasted" in entry.change_message  # the reason is kept, masked
    history = support_client.get(reverse("admin:tokens_accesstoken_history", args=[token.pk]))
    assert history.status_code == 200 and "customer pasted" in history.text
    body = pasted[len(crypto.TOKEN_PREFIX) :]
    for where, text in (
        ("LogEntry", entry.change_message),
        ("History page", history.text),
        ("dumpdata", dumped()),
    ):
        assert body[8:20] not in text, where


# A purge that fails after the revoke or the save committed.


class Outage:
    """The shared cache refuses writes while ``down`` is True (set by the test)."""

    def __init__(self, monkeypatch):
        self.down = False
        real_set = cache.set

        def set_or_fail(*args, **kwargs):
            if self.down:
                raise ConnectionError("cache down")
            return real_set(*args, **kwargs)

        monkeypatch.setattr("tokens.gateway.cache.cache.set", set_or_fail)
        monkeypatch.setattr("tokens.gateway.cache.time.sleep", lambda seconds: None)


@pytest.fixture
def outage(monkeypatch):
    return Outage(monkeypatch)


def cached(token):
    return cache.get(token_cache_key(token.digest))


@pytest.mark.django_db(transaction=True)
def test_a_bulk_revoke_during_a_cache_outage_says_so_and_running_it_again_purges(
    support_client, outage
):
    tokens = [make_token(owner=f"Owner {n}")[0] for n in range(3)]
    for token in tokens:
        cache.set(token_cache_key(token.digest), "cached as active")

    outage.down = True
    response = post_action(support_client, tokens, post="yes", reason="leaked")
    assert response.status_code == 302
    texts = message_texts(response)
    assert any("Revoked 3 tokens." in text for text in texts)
    assert not any("now receive HTTP 401" in text for text in texts)
    assert any("could not be reached" in t and "run “Revoke selected" in t for t in texts)
    for token in tokens:
        token.refresh_from_db()
        assert token.status == "revoked"
        assert cached(token) == "cached as active"

    # The same tokens, now all revoked, can be selected again: the action purges them.
    outage.down = False
    confirm = post_action(support_client, tokens, index="0")
    assert confirm.status_code == 200
    assert "Already revoked: will be purged again (3)" in confirm.text
    assert 'name="reason"' not in confirm.text
    response = post_action(support_client, tokens, post="yes")
    assert response.status_code == 302
    assert any(
        text.startswith("Purged 3 tokens already revoked") for text in message_texts(response)
    )
    for token in tokens:
        assert cached(token) == PURGED


@pytest.mark.django_db(transaction=True)
def test_the_revoke_page_during_a_cache_outage_says_so_and_purge_again_retries(
    support_client, outage
):
    token, _ = make_token()
    cache.set(token_cache_key(token.digest), "cached as active")
    outage.down = True
    response = support_client.post(revoke_url(token), {"reason": "leaked"})
    assert response.status_code == 302 and response["Location"] == change_url(token)
    assert any("Purge again" in text for text in message_texts(response))
    token.refresh_from_db()
    assert token.status == "revoked"

    outage.down = False
    page = support_client.get(change_url(token))
    assert revoke_url(token) in page.text and "Purge again" in page.text
    confirm = support_client.get(revoke_url(token))
    assert "This token is already revoked." in confirm.text
    response = support_client.post(revoke_url(token), {})
    assert response.status_code == 302
    assert cached(token) == PURGED
    assert any(
        text.startswith("Purged 1 token already revoked") for text in message_texts(response)
    )


def api_form(api, **changes):
    data = {
        "name": api.name,
        "version": api.version,
        "base_path": api.base_path,
        "description": api.description,
        "plans-TOTAL_FORMS": "0",
        "plans-INITIAL_FORMS": "0",
    }
    return {**data, **changes}


@pytest.mark.django_db(transaction=True)
def test_saving_an_api_during_a_cache_outage_saves_says_so_and_saving_again_purges(
    admin_client, outage
):
    api = PlanFactory(api__base_path="/pay").api
    url = reverse("admin:tokens_api_change", args=[api.pk])
    outage.down = True
    response = admin_client.post(url, api_form(api, name="Payments renamed"))
    assert response.status_code == 302
    assert Api.objects.get(pk=api.pk).name == "Payments renamed"
    assert any("could not be reached" in text for text in message_texts(response))

    outage.down = False
    before = cache.get(CATALOGUE_VERSION_KEY)
    response = admin_client.post(url, api_form(api, name="Payments renamed"))
    assert response.status_code == 302
    assert cache.get(CATALOGUE_VERSION_KEY) not in (None, before)


@pytest.mark.django_db(transaction=True)
def test_saving_a_plan_or_deleting_an_api_during_a_cache_outage_is_never_a_500(
    admin_client, outage
):
    plan = PlanFactory(rate_limit=10)
    spare = Api.objects.create(name="Spare", base_path="/spare")
    outage.down = True
    url = reverse("admin:tokens_plan_change", args=[plan.pk])
    form = {"api": plan.api_id, "name": plan.name, "description": "", "rate_limit": "20"}
    response = admin_client.post(url, form)
    assert response.status_code == 302
    assert Plan.objects.get(pk=plan.pk).rate_limit == 20
    assert any("could not be reached" in text for text in message_texts(response))

    response = admin_client.post(
        reverse("admin:tokens_api_delete", args=[spare.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Api.objects.filter(pk=spare.pk).exists()
    assert any("could not be reached" in text for text in message_texts(response))


@pytest.mark.django_db(transaction=True)
def test_deactivating_an_app_during_a_cache_outage_says_so_and_saving_again_purges(
    admin_client, outage
):
    app = AppFactory(name="Shop")
    url = reverse("admin:tokens_app_change", args=[app.pk])
    form = {
        "name": "Shop",
        "can_introspect": "",
        "subscription_set-TOTAL_FORMS": "0",
        "subscription_set-INITIAL_FORMS": "0",
    }  # is_active unticked
    outage.down = True
    response = admin_client.post(url, form)
    assert response.status_code == 302
    assert App.objects.get(pk=app.pk).is_active is False
    assert any("could not be reached" in text for text in message_texts(response))

    outage.down = False
    assert admin_client.post(url, form).status_code == 302
    assert cache.get(client_cache_key(app.client_id)) == PURGED


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["button", "action"])
def test_a_regenerated_secret_is_shown_even_during_a_cache_outage(admin_client, outage, how):
    app = AppFactory(client_secret="old-secret")
    outage.down = True
    if how == "button":
        url = reverse("admin:tokens_app_regenerate_secret", args=[app.pk])
        response = admin_client.post(url)
    else:
        response = admin_client.post(
            reverse("admin:tokens_app_changelist"),
            {"action": "regenerate_secret", "_selected_action": [app.pk], "post": "yes"},
        )
    assert response.status_code == 200
    [secret] = set(re.findall(r"tpcs_[0-9A-Za-z]{43}", response.text))
    app.refresh_from_db()
    assert app.check_client_secret(secret)
    assert "could not be reached" in response.text
