"""When the shared cache cannot be purged, the portal says so instead of failing with a 500."""

import pytest
from django.contrib.messages import get_messages

from tests.factories import make_token

# Purges run on commit, so these tests need real commits.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unreachable_cache(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("tokens.cache.cache.set", refuse)
    monkeypatch.setattr("tokens.cache.time.sleep", lambda seconds: None)


def test_revoke_with_unreachable_cache_is_saved_and_says_gateways_may_lag(
    portal_admin_client, unreachable_cache
):
    token, _ = make_token()
    response = portal_admin_client.post(f"/tokens/{token.public_id}/revoke/", {"reason": ""})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.status == "revoked"
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("could not be reached" in text and "seconds" in text for text in texts)


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
