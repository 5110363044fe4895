"""Changes of apps, plans and APIs reach every gateway answer at once; every purge after a
commit is attempted, and a failed one is reported, never silent (issue 12, items 4 and 5)."""

import logging

import pytest
from django.core.cache import cache as django_cache
from django.db import transaction

from tests.factories import PlanFactory, make_token
from tests.oauth_helpers import make_client, post_form
from tokens import services
from tokens.gateway.cache import PURGED, CachePurgeFailed, token_cache_key

# Purges and catalogue versions are set when a transaction commits: real commits here.
pytestmark = pytest.mark.django_db(transaction=True)

AUTH_URL = "/gateway/auth"


@pytest.fixture
def plan():
    return PlanFactory(api__base_path="/pay", name="Gold", rate_limit=100)


def check(client, secret, uri="/pay/x"):
    return client.get(AUTH_URL, HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_ORIGINAL_URI=uri)


def introspect(client, gateway_app, secret):
    app, app_secret = gateway_app
    return post_form(
        client, "/oauth/introspect/", {"token": secret}, auth=(app.client_id, app_secret)
    )


@pytest.fixture
def gateway_app():
    return make_client(can_introspect=True)


# --- An app's state ----------------------------------------------------------------------


def test_deactivating_an_app_stops_its_tokens_at_once_and_reactivating_brings_them_back(
    client, plan, gateway_app
):
    token, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200  # cached as active
    assert introspect(client, gateway_app, secret).json()["active"] is True

    token.app.is_active = False
    token.app.save()

    refused = check(client, secret)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]
    assert introspect(client, gateway_app, secret).json() == {"active": False}

    token.app.is_active = True
    token.app.save()

    assert check(client, secret).status_code == 200
    assert introspect(client, gateway_app, secret).json()["active"] is True


def test_a_token_revoked_while_its_app_was_inactive_stays_refused(client, plan, portal_admin):
    token, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200
    token.app.is_active = False
    token.app.save()
    services.token_revoke(token=token, actor=portal_admin)

    token.app.is_active = True
    token.app.save()

    assert check(client, secret).status_code == 401


def test_renaming_an_app_changes_the_name_gateways_pass_on_at_once(client, plan, gateway_app):
    token, secret = make_token(plans=[plan])
    assert check(client, secret)["X-Token-App"] != "Renamed Checkout"

    token.app.name = "Renamed Checkout"
    token.app.save()

    assert check(client, secret)["X-Token-App"] == "Renamed Checkout"


def test_a_plans_new_rate_limit_and_name_reach_the_gateway_at_once(client, plan, gateway_app):
    _, secret = make_token(plans=[plan])
    assert check(client, secret)["X-Token-Rate-Limit"] == "100"

    plan.rate_limit = 5
    plan.name = "Bronze"
    plan.save()

    answer = check(client, secret)
    assert answer["X-Token-Rate-Limit"] == "5"
    assert answer["X-Token-Plan"] == "Bronze"
    apis = introspect(client, gateway_app, secret).json()["apis"]
    assert [(api["plan"], api["base_path"]) for api in apis] == [("Bronze", "/pay")]


def test_an_apis_new_base_path_is_matched_at_once(client, plan, gateway_app):
    _, secret = make_token(plans=[plan])
    assert check(client, secret, "/pay/x").status_code == 200

    plan.api.base_path = "/payments"
    plan.api.save()

    assert check(client, secret, "/pay/x").status_code == 403
    assert check(client, secret, "/payments/x").status_code == 200
    apis = introspect(client, gateway_app, secret).json()["apis"]
    assert [api["base_path"] for api in apis] == ["/payments"]


def test_a_plan_and_an_app_made_after_the_catalogue_was_loaded_are_found(client, plan):
    _, first = make_token(plans=[plan])
    assert check(client, first).status_code == 200  # the catalogue is loaded now
    newer = PlanFactory(api=plan.api, name="Platinum")  # a new plan changes no version
    _, second = make_token(plans=[newer])  # of a new app too

    answer = check(client, second)

    assert answer.status_code == 200
    assert answer["X-Token-Plan"] == "Platinum"


# --- Purges after a commit -------------------------------------------------------------


def _cache_down_for(monkeypatch, digests):
    """The cache refuses writes of these tokens' keys (a failing Redis node, say)."""
    refused = {token_cache_key(digest) for digest in digests}
    real_set = django_cache.set

    def flaky(key, *args, **kwargs):
        if key in refused:
            raise ConnectionError("cache down")
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr("tokens.gateway.cache.cache.set", flaky)
    monkeypatch.setattr("tokens.gateway.cache.time.sleep", lambda seconds: None)


def test_every_purge_of_a_transaction_is_attempted_and_a_failure_is_reported(
    monkeypatch, portal_admin, caplog
):
    tokens = [make_token()[0] for _ in range(3)]
    for token in tokens:
        django_cache.set(token_cache_key(token.digest), "cached as active")
    _cache_down_for(monkeypatch, [tokens[0].digest])  # the first purge fails

    caplog.set_level(logging.INFO, logger="portal.middleware")
    with pytest.raises(CachePurgeFailed) as raised:
        services.token_revoke_many(tokens=tokens, actor=portal_admin)

    # The revocations stand; the purges after the failing one still ran.
    assert all(token.status == "revoked" for token in tokens)
    assert django_cache.get(token_cache_key(tokens[0].digest)) == "cached as active"
    assert django_cache.get(token_cache_key(tokens[1].digest)) == PURGED
    assert django_cache.get(token_cache_key(tokens[2].digest)) == PURGED
    assert "could not be reached" in raised.value.message
    # Every revocation's security line is written, the failure notwithstanding.
    revoked_lines = [r for r in caplog.records if r.getMessage() == "authn_token_revoked"]
    assert len(revoked_lines) == 3

    monkeypatch.undo()  # the cache is back: running the action again purges again
    again = services.token_revoke_many(tokens=tokens, actor=portal_admin)

    assert again.revoked == []
    assert django_cache.get(token_cache_key(tokens[0].digest)) == PURGED


def test_purges_wait_for_the_outermost_commit_and_vanish_with_a_rollback(portal_admin):
    kept, _ = make_token()
    dropped, _ = make_token()
    for token in (kept, dropped):
        django_cache.set(token_cache_key(token.digest), "cached as active")

    with transaction.atomic():
        services.token_revoke(token=kept, actor=portal_admin)
        try:
            with transaction.atomic():
                services.token_revoke(token=dropped, actor=portal_admin)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert django_cache.get(token_cache_key(kept.digest)) == "cached as active"

    assert django_cache.get(token_cache_key(kept.digest)) == PURGED
    dropped.refresh_from_db()
    assert dropped.status == "active"


def test_an_apps_save_with_the_cache_down_says_so_after_it_commits(monkeypatch, plan):
    token, _ = make_token(plans=[plan])

    def refuse(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("tokens.gateway.cache.cache.set", refuse)
    monkeypatch.setattr("tokens.gateway.cache.time.sleep", lambda seconds: None)
    token.app.is_active = False
    with pytest.raises(CachePurgeFailed):
        token.app.save()

    token.app.refresh_from_db()
    assert token.app.is_active is False  # saved; only the purge is still to do
