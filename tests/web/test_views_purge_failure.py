"""When the shared cache cannot be purged, the portal says so instead of failing with a 500."""

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache as django_cache

from tests.factories import make_token
from tokens.gateway.cache import PURGED, token_cache_key

# Purges run on commit, so these tests need real commits.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unreachable_cache(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("tokens.gateway.cache.cache.set", refuse)
    monkeypatch.setattr("tokens.gateway.cache.time.sleep", lambda seconds: None)


def test_revoke_with_unreachable_cache_is_saved_says_so_and_a_retry_purges(
    portal_admin_client, monkeypatch
):
    token, _ = make_token()
    key = token_cache_key(token.digest)
    django_cache.set(key, "cached as active")
    real_set = django_cache.set

    def refuse(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("tokens.gateway.cache.cache.set", refuse)
    monkeypatch.setattr("tokens.gateway.cache.time.sleep", lambda seconds: None)
    url = f"/tokens/{token.public_id}/revoke/"
    response = portal_admin_client.post(url, {"reason": ""})

    assert response.status_code == 503
    token.refresh_from_db()
    assert token.status == "revoked"
    assert "Revoked, but not yet effective everywhere." in response.text
    assert "could not be reached" in response.text and "seconds" in response.text
    assert ">RETRY</button>" in response.text
    assert django_cache.get(key) == "cached as active"  # what the gateways may still read

    monkeypatch.setattr("tokens.gateway.cache.cache.set", real_set)  # the cache is back: retry
    retried = portal_admin_client.post(url, {})

    assert retried.status_code == 302
    assert django_cache.get(key) == PURGED
    texts = [str(m) for m in get_messages(retried.wsgi_request)]
    assert any("told again" in text for text in texts)


def test_edit_with_unreachable_cache_is_saved_and_says_gateways_may_lag(
    portal_admin_client, unreachable_cache
):
    token, _ = make_token(owner="Before")
    response = portal_admin_client.post(
        f"/tokens/{token.public_id}/edit/",
        {
            "owner": "After",
            "version": token.version,
            "extra-TOTAL_FORMS": "0",
            "extra-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.owner == "After"
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("could not be reached" in text for text in texts)
