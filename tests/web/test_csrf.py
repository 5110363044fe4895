"""CSRF: every route that takes a session-authenticated POST refuses one without a valid
token, and refuses cross-origin requests even with one. Routes are read from the URLconf,
so a new route is covered the day it is added."""

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import AppFactory, UserFactory, make_token

pytestmark = pytest.mark.django_db

# Machine endpoints: callers authenticate with client credentials or a bearer token,
# never with a cookie, so a forged cross-site request carries nothing to abuse.
CSRF_EXEMPT_ROUTES = {
    "oauth:token",
    "oauth:revoke",
    "oauth:introspect",
    "gateway-auth",
    "secret-scanning-github",  # signed by GitHub (tokens.secret_scanning)
}


def walk(patterns, namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", entry


def sample_kwargs(pattern, token, user):
    names = list(getattr(pattern.pattern, "converters", {}) or {})
    names += list(pattern.pattern.regex.groupindex)
    values = {
        "public_id": token.public_id,
        "object_id": str(user.pk),
        "app_label": "tokens",
        "content_type_id": 1,
        "uidb64": "MQ",
        "token": "set-password",
        "id": user.pk,
    }
    if any(name not in values for name in names):
        return None
    return {name: values[name] for name in dict.fromkeys(names)}


@pytest.fixture
def everything():
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    token, _ = make_token(app=AppFactory())
    return root, token


def post_routes(token, user):
    for name, pattern in walk(get_resolver().url_patterns):
        kwargs = sample_kwargs(pattern, token, user)
        if kwargs is None:
            continue
        yield name, pattern, reverse(name, kwargs=kwargs)


def test_every_session_post_without_a_csrf_token_is_refused(everything):
    root, token = everything
    client = Client(enforce_csrf_checks=True)
    client.force_login(root)
    exempt, checked = set(), 0
    for name, pattern, url in post_routes(token, root):
        if getattr(pattern.callback, "csrf_exempt", False):
            exempt.add(name)
            continue
        response = client.post(url, {"reason": "forged", "owner": "Mallory"})
        assert response.status_code == 403, f"{name} {url}: {response.status_code}"
        checked += 1
    assert exempt == CSRF_EXEMPT_ROUTES
    assert checked > 50  # the portal's, the accounts' and every Django admin route
    token.refresh_from_db()
    assert token.revoked_at is None and token.owner != "Mallory"


def test_anonymous_login_post_without_a_token_is_refused(db):
    UserFactory(username="ada")
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("login"), {"username": "ada", "password": "correct horse battery staple"}
    )
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    assert "CSRF" in response.content.decode()


def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(reverse("login"))  # sets the CSRF cookie
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


def test_a_cross_origin_post_is_refused_even_with_a_valid_token(portal_admin):
    token, _ = make_token()
    client, csrf = csrf_client(portal_admin)
    url = reverse("tokens:revoke", args=[token.public_id])
    data = {"csrfmiddlewaretoken": csrf, "reason": "forged"}
    response = client.post(url, data, headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None

    response = client.post(url, data, headers={"origin": "http://testserver"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_an_https_post_from_another_site_is_refused_by_referer(portal_admin):
    token, _ = make_token()
    client, csrf = csrf_client(portal_admin)
    url = reverse("tokens:edit", args=[token.public_id])
    response = client.post(
        url,
        {"csrfmiddlewaretoken": csrf, "owner": "Mallory", "version": token.version},
        secure=True,
        headers={"referer": "https://evil.example/page"},
    )
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.owner != "Mallory"


def test_a_token_from_another_session_is_refused(portal_admin, plain_user):
    token, _ = make_token()
    _, foreign_csrf = csrf_client(plain_user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(portal_admin)
    client.get(reverse("tokens:list"))
    response = client.post(
        reverse("tokens:revoke", args=[token.public_id]),
        {"csrfmiddlewaretoken": foreign_csrf},
    )
    assert response.status_code == 403
