"""ROTATE in a real headless Chromium, by keyboard: Overview → ROTATE → choose how long the
old token keeps working → CONFIRM → the new secret, once; the two Overviews linked."""

import re

import pytest

from tests.e2e.browser import log_in
from tests.factories import AppFactory, PlanFactory, UserFactory, make_token
from tokens.models import AccessToken, TokenRotation

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def platform():
    gold = PlanFactory(name="Gold", api__name="Payments", api__base_path="/payments")
    token, secret = make_token(app=AppFactory(name="Acme Checkout"), owner="Ada", plans=[gold])
    UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])
    return token, secret


def test_administrator_rotates_a_token_by_keyboard(live_server, browser_page, platform):
    page, (token, old_secret) = browser_page, platform
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))
    page.goto(f"{live_server.url}{token.get_absolute_url()}")

    page.get_by_role("link", name="ROTATE").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/rotate/$"))
    group = page.get_by_role("group", name=re.compile("Old token keeps working for"))
    assert group.is_visible()
    for label in ["None (stops at once)", "1 hour", "24 hours", "7 days"]:
        assert group.get_by_label(label, exact=True).is_visible()
    group.get_by_label("24 hours").focus()
    page.keyboard.press("Space")
    assert group.get_by_label("24 hours").is_checked()
    page.get_by_role("button", name="CONFIRM").focus()
    page.keyboard.press("Enter")

    secret_box = page.get_by_label(re.compile("New access token for Ada"))
    secret = secret_box.input_value()
    rotation = TokenRotation.objects.get(old=token)
    assert AccessToken.objects.by_secret(secret).get() == rotation.new
    assert secret != old_secret
    assert page.get_by_role("button", name="Copy").is_visible()
    assert "keeps working until" in page.locator("[data-old-token-stop]").inner_text()

    page.get_by_role("link", name="Go to the old token’s overview").click()
    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/(#.*)?$"))
    assert secret not in page.content()
    assert page.get_by_role("link", name="ROTATE").count() == 0
    page.locator("#basic-info").get_by_role("link", name=rotation.new.masked_code).click()
    page.wait_for_url(re.compile(rf"/tokens/{rotation.new.public_id}/(#.*)?$"))
    assert page.locator("#basic-info").get_by_role("link", name=token.masked_code).is_visible()
    assert secret not in page.content()
    assert AccessToken.objects.count() == 2
