"""The quick search posts, so a pasted full token never appears in a URL."""

import pytest

from tests.factories import AppFactory, make_token

pytestmark = pytest.mark.django_db


def test_pasted_full_token_is_posted_and_redirects_without_the_secret(portal_admin_client):
    token, secret = make_token(owner="Leaky Larry")
    make_token(owner="Someone Else")

    response = portal_admin_client.post("/tokens/?status=active&page=3", {"q": secret})

    assert response.status_code == 302
    location = response["Location"]
    assert secret not in location
    assert "status=active" in location and "page=" not in location
    page = portal_admin_client.get(location)
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert list(page.context["tokens"]) == [token]


def test_pasted_unknown_token_finds_nothing_and_is_not_echoed(portal_admin_client):
    make_token()
    _, unknown = make_token(app=AppFactory())
    from tokens.models import AccessToken

    AccessToken.objects.by_secret(unknown).delete()

    response = portal_admin_client.post("/tokens/", {"q": unknown})

    assert unknown not in response["Location"]
    page = portal_admin_client.get(response["Location"])
    assert list(page.context["tokens"]) == []
    assert unknown not in page.content.decode()


def test_plain_search_text_is_kept_in_the_shareable_address(portal_admin_client):
    wanted, _ = make_token(owner="Grace Hopper")
    make_token(owner="Alan Turing")

    response = portal_admin_client.post("/tokens/?o=owner", {"q": "  grace "})

    assert response.status_code == 302
    page = portal_admin_client.get(response["Location"])
    assert "q=grace" in response["Location"] and "o=owner" in response["Location"]
    assert list(page.context["tokens"]) == [wanted]


def test_empty_search_clears_the_search_but_keeps_filters(portal_admin_client):
    response = portal_admin_client.post("/tokens/?q=old&origin=oauth", {"q": ""})
    assert response["Location"] == "/tokens/?origin=oauth"


def test_search_post_needs_the_view_permission(client, plain_user):
    client.force_login(plain_user)
    assert client.post("/tokens/", {"q": "x"}).status_code == 403


def test_search_form_posts_with_a_csrf_token(portal_admin_client):
    html = portal_admin_client.get("/tokens/").content.decode()
    assert 'method="post" action="?" role="search"' in html
    assert "csrfmiddlewaretoken" in html
