"""The account screens in a real headless Chromium: the navbar's user menu with the
keyboard alone and without JavaScript, logging out (which says so), and new recovery
codes confirmed, copied and downloaded; with the production Content-Security-Policy
(no violation may be reported)."""

import re
import time
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from tests.e2e.browser import log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
CODE = re.compile(r"^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$")


@pytest.fixture
def ada(db):
    return UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])


def watch_console(page) -> list[str]:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    return console


def csp_violations(console: list[str]) -> list[str]:
    time.sleep(0.2)  # let late console messages arrive
    return [text for text in console if "Content Security Policy" in text]


def focused(page) -> str:
    """What has the keyboard focus: its tag and text."""
    return page.evaluate(
        "() => document.activeElement.tagName + ' ' + document.activeElement.textContent.trim()"
    )


def accessibility_violations(page, within: str | None = None) -> list[str]:
    """What axe-core finds wrong on the page as it is now (rule ids), in ``within`` only
    when given (the list page's own contrast issues are issue 15, item 1)."""
    result = Axe().run(page, context=within) if within else Axe().run(page)
    return [violation["id"] for violation in result.response["violations"]]


def menu_open(page) -> bool:
    return page.locator("[data-user-menu]").evaluate("menu => menu.open")


def test_the_user_menu_works_with_the_keyboard_alone(live_server, browser_page, ada):
    page = browser_page
    console = watch_console(page)
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))

    # Tab from the top of the page to the menu's toggle (the username).
    page.locator("body").focus()
    for _ in range(15):
        page.keyboard.press("Tab")
        if focused(page) == "SUMMARY ada":
            break
    assert focused(page) == "SUMMARY ada"
    assert not menu_open(page)
    assert not page.get_by_role("link", name="Two-factor authentication").is_visible()

    page.keyboard.press("Enter")
    assert menu_open(page)
    assert page.get_by_role("link", name="Two-factor authentication").is_visible()
    assert accessibility_violations(page, within="[data-user-menu]") == []
    # Escape closes it, back on the toggle; the down arrow opens it on its first item.
    page.keyboard.press("Escape")
    assert not menu_open(page) and focused(page) == "SUMMARY ada"
    page.keyboard.press("ArrowDown")
    assert menu_open(page) and focused(page) == "A Two-factor authentication"
    page.keyboard.press("ArrowDown")
    assert focused(page) == "BUTTON Log out"
    # Tab order works as well: back to the toggle, open with Space, Tab to the first item.
    page.keyboard.press("Escape")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert focused(page) == "A Two-factor authentication"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/accounts/security/$"))
    assert page.get_by_role("heading", name="Two-factor authentication").is_visible()
    assert csp_violations(console) == []


def test_a_click_outside_closes_the_user_menu(live_server, browser_page, ada):
    page = browser_page
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))
    page.locator("[data-user-menu] summary").click()
    assert menu_open(page)
    page.get_by_role("heading", name="Access Tokens").click()
    assert not menu_open(page)


def test_logging_out_from_the_user_menu_says_so(live_server, browser_page, ada):
    page = browser_page
    console = watch_console(page)
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))
    page.get_by_text("ada", exact=True).click()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/login/$"))
    assert page.get_by_role("status").filter(has_text="You have been logged out.").is_visible()
    # Logged out indeed: the portal asks for the login again.
    page.goto(f"{live_server.url}/tokens/")
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/tokens/"))
    assert csp_violations(console) == []


def test_the_user_menu_works_without_javascript(live_server, nojs_page, ada):
    page = nojs_page
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))
    page.locator("[data-user-menu] summary").click()
    page.get_by_role("link", name="Two-factor authentication").click()
    page.wait_for_url(re.compile(r"/accounts/security/$"))
    page.locator("[data-user-menu] summary").click()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/login/$"))
    assert page.get_by_text("You have been logged out.").is_visible()


def test_new_recovery_codes_are_confirmed_then_copied_and_downloaded(
    live_server, browser_page, ada
):
    device = TOTPDevice.objects.create(user=ada, name="app", confirmed=True)
    old_codes = mfa.new_recovery_codes(ada)
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    console = watch_console(page)
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/accounts/mfa/"))
    page.get_by_label("Code").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/tokens/$"))

    page.goto(f"{live_server.url}/accounts/security/")
    page.get_by_role("link", name="Generate new recovery codes").click()
    page.wait_for_url(re.compile(r"/accounts/security/recovery-codes/$"))
    assert page.get_by_text("The recovery codes you have now stop working").is_visible()
    page.get_by_role("button", name="Yes, generate new codes").click()

    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and all(CODE.match(code) for code in codes)
    assert not set(codes) & set(old_codes)
    assert accessibility_violations(page) == []

    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()").split() == codes

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "token-portal-recovery-codes.txt"
    lines = Path(download.path()).read_text().splitlines()
    assert [line for line in lines if CODE.match(line)] == codes
    assert csp_violations(console) == []
