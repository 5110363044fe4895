"""The administrator's whole journey in a real headless Chromium, against a live server."""

import re

import pytest

from tests.e2e.browser import log_in
from tests.factories import AppFactory, PlanFactory, UserFactory, make_token
from tokens.models import AccessToken, AuditAction

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def platform():
    gold = PlanFactory(name="Gold", api__name="Payments", api__base_path="/payments")
    silver = PlanFactory(name="Silver", api=gold.api)
    app = AppFactory(name="Acme Checkout")
    token, secret = make_token(app=app, owner="Ada Lovelace", plans=[silver])
    UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])
    return {"token": token, "secret": secret, "gold": gold, "silver": silver}


def test_administrator_edits_then_revokes_a_token(live_server, browser_page, platform):
    page, token = browser_page, platform["token"]
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))
    assert page.get_by_role("heading", name="Access Tokens").is_visible()

    row = page.get_by_role("row").filter(has_text=token.masked_code)
    row.get_by_role("link", name="Overview").click()
    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/(#.*)?$"))
    assert page.get_by_role("tab", name="Basic info").get_attribute("aria-selected") == "true"
    assert page.get_by_text("Ada Lovelace").first.is_visible()
    page.get_by_role("tab", name="APIs and Plans").click()
    plans_pane = page.locator("#apis-and-plans")
    assert plans_pane.is_visible()
    assert "Silver" in plans_pane.inner_text()

    page.get_by_role("link", name="EDIT").click()
    page.wait_for_url(re.compile(r"/edit/$"))
    page.get_by_label("Owner").fill("Grace Hopper")
    page.get_by_role("button", name="Add extra field").click()
    names = page.locator("input[name$='-name']")
    values = page.locator("input[name$='-value']")
    names.last.fill("Ticket")
    values.last.fill("SUP-42")
    page.get_by_role("tab", name="APIs and Plans").click()
    page.get_by_label(str(platform["gold"].api)).select_option(label="Gold")
    page.get_by_role("button", name="Save Edit").click()

    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/(#.*)?$"))
    assert page.get_by_role("status").filter(has_text="was saved").is_visible()
    page.get_by_role("tab", name="Basic info").click()
    assert page.locator("#basic-info").get_by_text("Grace Hopper").is_visible()
    assert page.locator("#basic-info").get_by_text("SUP-42").is_visible()
    page.get_by_role("tab", name="APIs and Plans").click()
    assert "Gold" in page.locator("#apis-and-plans").inner_text()

    page.get_by_role("link", name="REVOKE").click()
    page.wait_for_url(re.compile(r"/revoke/$"))
    warning = page.get_by_role("alert").first.inner_text()
    assert "HTTP 401 (Unauthorized)" in warning
    page.get_by_label("Reason (optional)").fill("Leaked in a ticket")
    page.get_by_role("button", name="CONFIRM").click()

    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/(#.*)?$"))
    page.get_by_role("tab", name="Basic info").click()
    status = page.locator("#basic-info dt:text-is('Status') + dd")
    assert status.inner_text() == "Revoked"
    assert page.get_by_role("link", name="EDIT").count() == 0
    assert page.get_by_role("link", name="REVOKE").count() == 0

    page.get_by_role("link", name="History").click()
    history = page.locator("table").inner_text()
    assert "Edited" in history and "Revoked" in history
    assert "Grace Hopper" in history and "Leaked in a ticket" in history

    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.owner == "Grace Hopper"
    assert list(token.events.values_list("action", flat=True)) == [
        AuditAction.REVOKED,
        AuditAction.EDITED,
        AuditAction.CREATED,
    ]
    assert platform["secret"] not in page.content()


def test_new_token_secret_is_shown_once_with_a_copy_button(live_server, browser_page, platform):
    page = browser_page
    log_in(page, live_server.url, "ada", PASSWORD)
    page.goto(f"{live_server.url}/tokens/")
    page.get_by_role("link", name="New access token").click()
    page.get_by_label("App").select_option(label="Acme Checkout")
    page.get_by_label("Owner").fill("Linus Torvalds")
    page.get_by_role("button", name="Create token").click()
    secret_box = page.get_by_label(re.compile("Access token for Linus Torvalds"))
    secret = secret_box.input_value()
    assert secret.startswith("tpk_")
    assert page.get_by_role("button", name="Copy").is_visible()
    created = AccessToken.objects.get(owner="Linus Torvalds")
    assert AccessToken.objects.by_secret(secret).get() == created

    page.get_by_role("link", name="Go to the token’s overview").click()
    assert secret not in page.content()
    page.reload()
    assert secret not in page.content()


def test_edit_works_without_javascript(live_server, nojs_page, platform):
    page, token = nojs_page, platform["token"]
    log_in(page, live_server.url, "ada", PASSWORD)
    page.goto(f"{live_server.url}/tokens/{token.public_id}/edit/")
    # Without JavaScript both tabs' sections are on the page, one below the other.
    assert page.locator("#basic-info").is_visible()
    assert page.locator("#apis-and-plans").is_visible()
    page.get_by_label("Owner").fill("Margaret Hamilton")
    page.locator("input[name$='-name']").last.fill("Team")
    page.locator("input[name$='-value']").last.fill("Apollo")
    page.get_by_role("button", name="Add extra field").click()  # a round trip, nothing saved
    assert page.locator("input[name$='-name']").count() == 2
    assert page.get_by_label("Owner").input_value() == "Margaret Hamilton"
    token.refresh_from_db()
    assert token.owner == "Ada Lovelace"
    page.locator("input[name$='-name']").last.fill("Floor")
    page.locator("input[name$='-value']").last.fill("3")
    page.get_by_role("button", name="Save Edit").click()
    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/(#.*)?$"))
    token.refresh_from_db()
    assert token.owner == "Margaret Hamilton"
    assert token.extra_field_pairs() == [("Team", "Apollo"), ("Floor", "3")]
