"""One rule for the revoke reason, the service's (``services.revoke_reason_required``): the
portal's REVOKE and Django admin ask it and mark the field to match; ``token_revoke``
enforces it. Today a reason is optional everywhere (DESIGN.md: "an optional reason"); the
tests that flip the rule prove that every door follows the one switch. Required fields
are marked visibly on every portal form."""

import re

import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from tests.factories import AppFactory, make_token
from tokens import services
from tokens.models import AccessToken, TokenOrigin
from tokens.services import lifecycle

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LEGEND = 'Fields marked <span class="asteriskField">*</span> are required.'


@pytest.fixture
def reason_required(monkeypatch):
    """The rule switched to "required" for the portal channel (portal and admin)."""
    monkeypatch.setitem(lifecycle._REASON_REQUIRED, services.RevokeChannel.PORTAL, True)


def portal_revoke_url(token) -> str:
    return reverse("tokens:revoke", args=[token.public_id])


def admin_revoke_url(token) -> str:
    return reverse("admin:tokens_accesstoken_revoke", args=[token.pk])


def reason_textarea(html: str) -> str:
    return re.search(r'<textarea[^>]*name="reason"[^>]*>', html).group(0)


def test_today_a_reason_is_optional_in_every_channel():
    for channel in (
        services.RevokeChannel.PORTAL,
        services.RevokeChannel.OAUTH,
        services.RevokeChannel.INCIDENT,
    ):
        assert services.revoke_reason_required(channel) is False


def test_the_portal_and_the_admin_say_optional_alike(portal_admin_client, support_client):
    token, _ = make_token()
    for client, url in (
        (portal_admin_client, portal_revoke_url(token)),
        (support_client, admin_revoke_url(token)),
    ):
        html = client.get(url).text
        assert "Reason (optional)" in html
        assert "required" not in reason_textarea(html)
        assert LEGEND not in html and "are required" not in html


# --- the rule switched to "required" --------------------------------------------------------


def test_required_the_service_refuses_a_revoke_without_a_reason(reason_required):
    token, _ = make_token()
    with pytest.raises(services.RevokeReasonRequired):
        services.token_revoke(token=token, actor=None, reason="  \n ")
    assert AccessToken.objects.get(pk=token.pk).revoked_at is None
    assert services.token_revoke(token=token, actor=None, reason="leaked")


def test_required_a_purge_again_of_a_revoked_token_needs_no_reason(reason_required):
    token, _ = make_token()
    services.token_revoke(token=token, actor=None, reason="leaked")
    assert services.token_revoke(token=token, actor=None, reason="") is False


def test_required_a_bulk_revoke_without_a_reason_revokes_nothing(reason_required):
    app = AppFactory()
    tokens = [make_token(app=app)[0], make_token(app=app)[0]]
    with pytest.raises(services.RevokeReasonRequired):
        services.token_revoke_many(tokens=tokens, actor=None, reason="")
    assert not AccessToken.objects.revoked().exists()


def test_required_other_channels_are_unaffected(reason_required):
    token, _ = make_token(origin=TokenOrigin.OAUTH)
    assert services.token_revoke(
        token=token, actor=token.app, reason="", channel=services.RevokeChannel.OAUTH
    )


def test_required_the_portal_marks_the_reason_and_refuses_an_empty_one(
    reason_required, portal_admin_client
):
    token, _ = make_token()
    html = portal_admin_client.get(portal_revoke_url(token)).text
    assert LEGEND in html
    assert "required" in reason_textarea(html)
    assert re.search(r'Reason<span class="asteriskField">\*</span>', html)
    assert "Reason (optional)" not in html

    refused = portal_admin_client.post(portal_revoke_url(token), {"reason": " "})
    assert refused.status_code == 400
    assert "This field is required." in refused.text
    assert AccessToken.objects.get(pk=token.pk).revoked_at is None

    portal_admin_client.post(portal_revoke_url(token), {"reason": "leaked"})
    assert AccessToken.objects.get(pk=token.pk).revocation_reason == "leaked"
    # RETRY of a failed purge posts no reason: a revoked token is only purged again.
    retry = portal_admin_client.post(portal_revoke_url(token), {})
    assert retry.status_code == 302


def test_required_the_admin_marks_the_reason_and_refuses_an_empty_one(
    reason_required, support_client
):
    token, _ = make_token()
    html = support_client.get(admin_revoke_url(token)).text
    assert "are required." in html
    assert "required" in reason_textarea(html)
    assert re.search(r'class="required">Reason<span class="required-marker"[^>]*>\*</span>', html)

    refused = support_client.post(admin_revoke_url(token), {"reason": ""})
    assert refused.status_code == 200
    assert "This field is required." in refused.text
    assert AccessToken.objects.get(pk=token.pk).revoked_at is None

    done = support_client.post(admin_revoke_url(token), {"reason": "leaked"})
    assert done.status_code == 302
    assert AccessToken.objects.get(pk=token.pk).revocation_reason == "leaked"
    # Purging it again (the same page, now "Purge again") asks no reason.
    again = support_client.get(admin_revoke_url(token)).text
    assert 'name="reason"' not in again


# --- required fields are marked on every portal form -----------------------------------------


def _required_inputs(html: str) -> dict[str, bool]:
    """Each named input/select/textarea: whether it carries the ``required`` attribute."""
    return {
        match.group(2): " required" in match.group(0)
        for match in re.finditer(r'<(input|select|textarea)[^>]*name="([^"]+)"[^>]*>', html)
        if 'type="hidden"' not in match.group(0)
    }


def _marked(html: str, label: str) -> bool:
    return re.search(rf'{re.escape(label)}<span class="asteriskField">\*</span>', html) is not None


def test_the_create_form_marks_app_and_owner_required(portal_admin_client):
    AppFactory()
    html = portal_admin_client.get(reverse("tokens:create")).text
    assert LEGEND in html
    inputs = _required_inputs(html)
    assert inputs["app"] and inputs["owner"] and not inputs["expires_on"]
    assert _marked(html, "App") and _marked(html, "Owner") and not _marked(html, "Expires")


def test_the_edit_form_marks_the_owner_required(portal_admin_client):
    token, _ = make_token()
    html = portal_admin_client.get(reverse("tokens:edit", args=[token.public_id])).text
    assert LEGEND in html
    assert _required_inputs(html)["owner"] and _marked(html, "Owner")


def test_the_login_form_marks_both_fields_required(client):
    html = client.get(reverse("login")).text
    assert LEGEND in html
    inputs = _required_inputs(html)
    assert inputs["username"] and inputs["password"]
    assert _marked(html, "Username") and _marked(html, "Password")


def test_the_two_factor_forms_mark_the_code_required(portal_admin_client, portal_admin):
    setup = portal_admin_client.get(reverse("mfa-setup")).text
    assert LEGEND in setup and _required_inputs(setup)["code"]
    assert _marked(setup, "Code from the app")
    # Enrolled, with the session not yet verified: the verify page.
    TOTPDevice.objects.filter(user=portal_admin).update(confirmed=True)
    mfa.new_recovery_codes(portal_admin)
    verify = portal_admin_client.get(reverse("mfa-verify")).text
    assert LEGEND in verify and _required_inputs(verify)["code"] and _marked(verify, "Code")
