"""Two-factor authentication in a real browser: enrol, then log in with a TOTP code,
with the production Content-Security-Policy (no violation may be reported)."""

import base64
import re
import time

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.e2e.browser import log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


def code_from_key(typed_key: str, steps_ahead: int = 0) -> str:
    key = typed_key.replace(" ", "")
    secret = base64.b32decode(key + "=" * (-len(key) % 8))
    return f"{totp(secret, t0=-30 * steps_ahead):06d}"


def test_administrator_enrols_then_logs_in_with_a_totp_code(live_server, browser_page, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "REQUIRE_MFA": True}
    UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])
    page = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    # First login: the password alone leads to enrolment, nowhere else.
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/accounts/mfa/setup/"))
    qr = page.get_by_role("img", name=re.compile("QR code"))
    assert qr.is_visible() and qr.evaluate("img => img.naturalWidth") > 0
    key = page.locator("#totp-key").inner_text()
    page.get_by_label("Code from the app").fill(code_from_key(key))
    page.get_by_role("button", name="Confirm and turn on").click()

    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name=re.compile("continue")).click()
    page.wait_for_url(re.compile(r"/tokens/$"))
    assert page.get_by_role("heading", name="Access Tokens").is_visible()

    # Next login: password, then a code computed here from the key the page showed.
    page.locator("[data-user-menu] summary").click()  # the user menu
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/accounts/mfa/"))
    assert page.get_by_role("heading", name="Two-factor authentication").is_visible()
    page.goto(f"{live_server.url}/tokens/")  # not before the second factor
    page.wait_for_url(re.compile(r"/accounts/mfa/\?next=/tokens/"))
    page.get_by_label("Code").fill(code_from_key(key, steps_ahead=1))  # a fresh time step
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/tokens/$"))
    assert page.get_by_role("heading", name="Access Tokens").is_visible()

    # The verified session is not asked again.
    page.goto(f"{live_server.url}/tokens/new/")
    assert page.url.endswith("/tokens/new/")

    time.sleep(0.2)  # let late console messages arrive
    violations = [text for text in console if "Content Security Policy" in text]
    assert violations == []


def test_in_debug_mode_an_enrolled_administrator_is_asked_for_a_code(
    live_server, browser_page, settings
):
    """DJANGO_DEBUG=1 turns the two-factor policy off for accounts without a device; an
    account that enrolled one is still asked for a code at every login."""
    settings.DEBUG = True
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "REQUIRE_MFA": False}
    ada = UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])
    device = TOTPDevice.objects.create(user=ada, name="Authenticator app", confirmed=True)
    page = browser_page

    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/accounts/mfa/"))
    assert page.get_by_role("heading", name="Two-factor authentication").is_visible()
    page.goto(f"{live_server.url}/tokens/")  # the password alone opens nothing
    page.wait_for_url(re.compile(r"/accounts/mfa/\?next=/tokens/"))

    page.get_by_label("Code").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/tokens/$"))
    page.goto(f"{live_server.url}/accounts/security/")
    assert "On" in page.locator("main").inner_text()
