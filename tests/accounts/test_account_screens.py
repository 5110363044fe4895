"""The account screens: the navbar's user menu, logging out (and saying so), and new
recovery codes (confirmed first, then shown once, to copy or download)."""

import re
from urllib.parse import unquote

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from accounts.models import RecoveryCodeDevice
from accounts.views import RECOVERY_CODES_FILENAME

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PASSWORD = "correct horse battery staple"
CODE = r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}"


@pytest.fixture
def verified_client(client, portal_admin):
    """A portal administrator with an authenticator app, past the second factor."""
    device = TOTPDevice.objects.create(user=portal_admin, name="app", confirmed=True)
    old_codes = mfa.new_recovery_codes(portal_admin)
    client.post(reverse("login"), {"username": portal_admin.username, "password": PASSWORD})
    code = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    assert client.post(reverse("mfa-verify"), {"code": code}).status_code == 302
    client.old_codes = old_codes
    return client


def shown_codes(html: str) -> list[str]:
    return re.findall(rf'<li class="col">({CODE})</li>', html)


def user_menu(html: str) -> str:
    return re.search(r"<details[^>]*data-user-menu.*?</details>", html, re.S).group(0)


# --- the user menu ------------------------------------------------------------------------


def test_the_user_menu_holds_two_factor_and_log_out(portal_admin_client, portal_admin):
    menu = user_menu(portal_admin_client.get(reverse("tokens:list")).text)
    assert f"</i>{portal_admin.username}</summary>" in menu
    assert f'<a class="dropdown-item" href="{reverse("account-security")}">' in menu
    assert ">Two-factor authentication</a>" in menu
    # Log out posts (Django's logout is POST-only), with the CSRF token.
    form = re.search(r"<form[^>]*>.*?</form>", menu, re.S).group(0)
    assert f'method="post" action="{reverse("logout")}"' in form
    assert 'name="csrfmiddlewaretoken"' in form and ">Log out</button>" in form


def test_the_user_menu_is_absent_when_logged_out(client):
    assert "data-user-menu" not in client.get(reverse("login")).text


def test_the_user_menu_script_is_linked(client):
    html = client.get(reverse("login")).text
    assert re.search(r'<script src="/static/js/account\.js">', html)


# --- logging out --------------------------------------------------------------------------


def test_logging_out_says_so_on_the_login_page(portal_admin_client):
    response = portal_admin_client.post(reverse("logout"), follow=True)
    assert response.redirect_chain == [(reverse("login"), 302)]
    assert "You have been logged out." in response.text
    assert "data-user-menu" not in response.text
    # Said once.
    assert "You have been logged out." not in portal_admin_client.get(reverse("login")).text


def test_logging_out_is_post_only(portal_admin_client):
    assert portal_admin_client.get(reverse("logout")).status_code == 405
    assert portal_admin_client.get(reverse("tokens:list")).status_code == 200


# --- new recovery codes ---------------------------------------------------------------------


def test_the_security_page_leads_to_a_confirmation_not_to_new_codes(verified_client):
    page = verified_client.get(reverse("account-security")).text
    assert f'href="{reverse("recovery-codes")}">Generate new recovery codes</a>' in page

    confirm = verified_client.get(reverse("recovery-codes"))
    assert confirm.status_code == 200
    assert "The recovery codes you have now stop working" in confirm.text
    assert "you have 10 unused" in confirm.text
    assert re.search(rf'<form method="post" action="{reverse("recovery-codes")}"', confirm.text)
    assert ">Yes, generate new codes</button>" in confirm.text
    assert shown_codes(confirm.text) == []
    # Looking at the confirmation changed nothing: the old codes still work.
    device = RecoveryCodeDevice.objects.get()
    assert device.verify_token(verified_client.old_codes[0])


def test_a_post_to_the_security_page_lands_on_the_confirmation(verified_client):
    response = verified_client.post(reverse("account-security"))
    assert response.status_code == 302
    assert response["Location"] == reverse("recovery-codes")
    assert RecoveryCodeDevice.objects.get().codes.count() == 10


def test_confirming_shows_new_codes_once_to_copy_and_download(verified_client):
    response = verified_client.post(reverse("recovery-codes"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.text
    codes = shown_codes(html)
    assert len(set(codes)) == 10 and not set(codes) & set(verified_client.old_codes)

    # Copy: a button the script (no inline script: the CSP) wires to the list.
    assert re.search(r'<button type="button"[^>]*data-copy-codes="recovery-codes"', html)
    assert "<script>" not in html
    # Download: a data: link in this same answer, a text file of the same codes.
    link = re.search(r'<a [^>]*href="(data:[^"]*)" download="([^"]+)"', html)
    assert link.group(2) == RECOVERY_CODES_FILENAME
    assert link.group(1).startswith("data:text/plain;charset=utf-8,")
    text = unquote(link.group(1).split(",", 1)[1])
    assert re.findall(rf"^{CODE}$", text, re.M) == codes
    assert "recovery codes of admin-ada" in text

    # Never again: not on the security page, not on the confirmation, not in the session.
    for url in (reverse("account-security"), reverse("recovery-codes")):
        assert not set(codes) & set(re.findall(CODE, verified_client.get(url).text))
    for session in Session.objects.all():
        decoded = str(session.get_decoded())
        assert not any(code in decoded or code.replace("-", "") in decoded for code in codes)


def test_new_codes_need_a_verified_session(client, portal_admin):
    TOTPDevice.objects.create(user=portal_admin, name="app", confirmed=True)
    mfa.new_recovery_codes(portal_admin)
    client.post(reverse("login"), {"username": portal_admin.username, "password": PASSWORD})
    response = client.post(reverse("recovery-codes"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa-verify"))
    assert RecoveryCodeDevice.objects.get().codes.count() == 10


def test_without_a_device_there_are_no_codes_to_renew(portal_admin_client):
    response = portal_admin_client.post(reverse("recovery-codes"))
    assert response.status_code == 302
    assert response["Location"] == reverse("account-security")
    assert not RecoveryCodeDevice.objects.exists()


def test_anonymous_is_sent_to_log_in(client):
    response = client.get(reverse("recovery-codes"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
