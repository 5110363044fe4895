"""Revoke: a confirm page, a CONFIRM that revokes once, and what each kind of token allows."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.factories import XSS, XSS_ESCAPED, api_with_plans, assert_escaped, make_token
from tokens import services
from tokens.models import AccessToken, AuditAction, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def revoke_url(token) -> str:
    return reverse("tokens:revoke", args=[token.public_id])


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _row(token) -> dict:
    return AccessToken.objects.filter(pk=token.pk).values().get()


def test_confirm_page_warns_about_401_and_offers_reason_and_confirm(portal_admin_client):
    token, _ = make_token(owner="Ada")

    response = portal_admin_client.get(revoke_url(token))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Requests using this token will receive HTTP 401 (Unauthorized)" in html
    assert re.search(r'<textarea[^>]*name="reason"', html)
    assert re.search(r'<form method="post"', html)
    assert re.search(r'<button type="submit"[^>]*>CONFIRM</button>', html)
    assert "Ada" in html
    assert token.masked_code in html


def test_opening_the_confirm_page_does_not_revoke(portal_admin_client):
    token, _ = make_token()
    before = _row(token)

    portal_admin_client.get(revoke_url(token) + "?reason=x&confirm=1")

    assert _row(token) == before
    assert not token.events.filter(action=AuditAction.REVOKED).exists()


def test_confirm_revokes_the_token_and_the_overview_says_so(portal_admin_client, portal_admin):
    token, _ = make_token()

    response = portal_admin_client.post(
        revoke_url(token), {"reason": "Leaked in a public repo"}, REMOTE_ADDR="192.0.2.10"
    )

    assert response.status_code == 302
    assert response.url == token.get_absolute_url()
    assert (
        f"Token {token.masked_code} is revoked. "
        "Requests using it now receive HTTP 401 (Unauthorized)." in _messages(response)
    )
    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revoked_by == "admin-ada"
    assert token.revocation_reason == "Leaked in a public repo"
    event = token.events.get(action=AuditAction.REVOKED)
    assert (event.actor, event.remote_addr) == (portal_admin, "192.0.2.10")
    overview = portal_admin_client.get(token.get_absolute_url()).content.decode()
    assert "This token was revoked on" in overview
    assert ">Revoked<" in overview


def test_reason_is_optional(portal_admin_client):
    token, _ = make_token()

    portal_admin_client.post(revoke_url(token), {})

    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revocation_reason == ""


def test_a_multi_line_reason_is_kept(portal_admin_client):
    token, _ = make_token()

    response = portal_admin_client.post(
        revoke_url(token), {"reason": "Leaked in a repo.\r\nClient secret rotated."}
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revocation_reason == "Leaked in a repo.\nClient secret rotated."


def test_revoking_twice_changes_nothing_the_second_time(portal_admin_client, support_client):
    token, _ = make_token()
    portal_admin_client.post(revoke_url(token), {"reason": "first"})
    after_first = _row(token)

    again = support_client.post(revoke_url(token), {"reason": "second"})

    assert again.status_code == 302
    assert "This token was already revoked; the gateways' cache was told again." in _messages(again)
    assert _row(token) == after_first
    assert token.events.filter(action=AuditAction.REVOKED).count() == 1


def test_confirm_page_of_a_revoked_token_leads_back_to_the_overview(portal_admin_client):
    token, _ = make_token(revoked=True)

    response = portal_admin_client.get(revoke_url(token))

    assert response.status_code == 302
    assert response.url == token.get_absolute_url()
    assert "This token is already revoked." in _messages(response)


def test_revoked_token_answers_401_at_the_gateway_at_once(
    portal_admin_client, client, transactional_db
):
    _, (gold,) = api_with_plans("Gold", base_path="/payments")
    token, secret = make_token(plans=[gold])
    gateway = {"HTTP_AUTHORIZATION": f"Bearer {secret}", "HTTP_X_ORIGINAL_URI": "/payments/1"}
    assert client.get("/gateway/auth", **gateway).status_code == 200  # now cached as valid

    portal_admin_client.post(revoke_url(token), {"reason": "leak"})

    answer = client.get("/gateway/auth", **gateway)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer["WWW-Authenticate"]


# --- Tokens the portal does not revoke ------------------------------------------------------


def test_oauth_token_page_explains_the_revocation_call_instead_of_confirm(portal_admin_client):
    token, _ = make_token(origin=TokenOrigin.OAUTH)

    html = portal_admin_client.get(revoke_url(token)).content.decode()

    assert "CONFIRM" not in html
    assert 'name="reason"' not in html
    assert "revocation HTTP call (RFC 7009)" in html
    assert "curl -X POST http://testserver/oauth/revoke/" in html


def test_oauth_token_cannot_be_revoked_by_a_forged_post(portal_admin_client):
    token, _ = make_token(origin=TokenOrigin.OAUTH)
    before = _row(token)

    response = portal_admin_client.post(revoke_url(token), {"reason": "forged"})

    assert response.status_code == 302
    assert any("RFC 7009" in m for m in _messages(response))
    assert _row(token) == before


def test_expired_token_is_not_revocable(portal_admin_client):
    token, _ = make_token(expired=True)
    before = _row(token)

    page = portal_admin_client.get(revoke_url(token))
    posted = portal_admin_client.post(revoke_url(token), {"reason": "x"})

    assert "This token is expired; it cannot be revoked." in page.content.decode()
    assert "CONFIRM" not in page.content.decode()
    assert posted.status_code == 302
    assert any("expired" in m for m in _messages(posted))
    assert _row(token) == before


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("x" * 501, "at most 500 characters"),
        ("hidden\x1b[8mtext", "control or invisible characters"),
        ("nul\x00", "Null characters are not allowed"),
    ],
)
def test_a_bad_reason_is_a_form_error_and_nothing_is_revoked(portal_admin_client, reason, error):
    token, _ = make_token()
    before = _row(token)

    response = portal_admin_client.post(revoke_url(token), {"reason": reason})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert _row(token) == before


def test_unknown_token_is_404(portal_admin_client):
    url = "/tokens/00000000-0000-4000-8000-000000000000/revoke/"

    assert portal_admin_client.get(url).status_code == 404
    assert portal_admin_client.post(url, {}).status_code == 404


def test_concurrent_revokes_write_one_audit_event(portal_admin_client, portal_admin):
    token, _ = make_token()
    # Another administrator revoked it between this page's load and its CONFIRM.
    services.token_revoke(token=AccessToken.objects.get(pk=token.pk), actor=portal_admin)

    response = portal_admin_client.post(revoke_url(token), {"reason": "late"})

    assert "This token was already revoked; the gateways' cache was told again." in _messages(
        response
    )
    assert token.events.filter(action=AuditAction.REVOKED).count() == 1


def test_user_text_is_escaped_on_the_confirm_page(portal_admin_client, hostile_token):
    token, _ = hostile_token

    html = portal_admin_client.get(revoke_url(token)).content.decode()

    assert_escaped(html)
    assert f"Owner {XSS_ESCAPED}" in html


def test_a_hostile_reason_is_stored_as_text_and_shown_escaped(portal_admin_client):
    token, _ = make_token()

    portal_admin_client.post(revoke_url(token), {"reason": f"Reason {XSS}"})

    token.refresh_from_db()
    assert token.revocation_reason == f"Reason {XSS}"
    for url in (token.get_absolute_url(), reverse("tokens:history", args=[token.public_id])):
        html = portal_admin_client.get(url).content.decode()
        assert_escaped(html)
        assert f"Reason {XSS_ESCAPED}" in html
