"""The list's filters in a real headless Chromium: keyboard only, and without JavaScript."""

import re
import time

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.e2e.browser import log_in
from tests.factories import AppFactory, PlanFactory, UserFactory, make_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def platform():
    plans = {
        name: PlanFactory(name="Free", api__name=name, api__version="v1", api__base_path=f"/{name}")
        for name in ("Payments", "Payouts", "Orders", "Shipping", "Catalog")
    }
    app = AppFactory(name="Acme Checkout")
    make_token(app=app, owner="tok-pay", plans=[plans["Payments"]])
    make_token(app=app, owner="tok-payouts", plans=[plans["Payouts"]])
    make_token(app=app, owner="tok-orders", plans=[plans["Orders"]])
    make_token(app=app, owner="other-pay", plans=[plans["Payments"]])
    UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])
    return {name: plan.api for name, plan in plans.items()}


def owners(page) -> list[str]:
    return sorted(page.locator("table.table-tokens tbody tr td:nth-child(3)").all_inner_texts())


def chips(page) -> list[str]:
    """The applied filters' chips, as a screen reader names them: "Remove filter …"."""
    names = [link.text_content() for link in page.locator(".filter-chips li a").all()]
    assert all(name.startswith("Remove filter ") and name.endswith("×") for name in names)
    return [name.removeprefix("Remove filter ").removesuffix("×") for name in names]


def tab_to(page, test: str, *, limit: int = 80) -> None:
    """Press Tab until the focused element passes ``test`` (JavaScript, given ``el``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const el = document.activeElement; return {test}; }}"):
            return
    raise AssertionError(f"Tab never reached an element where {test}")


def test_search_and_pick_two_apis_with_the_keyboard_alone(live_server, browser_page, platform):
    page = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))

    # Search.
    page.locator("body").focus()
    tab_to(page, "el.id === 'id_q'")
    page.keyboard.type("tok")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tokens/\?q=tok$"))
    assert owners(page) == ["tok-orders", "tok-pay", "tok-payouts"]

    # Open the Advanced filter; narrow the APIs by typing; Enter there only narrows.
    page.locator("body").focus()
    tab_to(page, "el.tagName === 'SUMMARY' && el.textContent.trim() === 'Advanced filter'")
    page.keyboard.press("Enter")
    assert page.locator("form[aria-label='Advanced filter'] details").evaluate(
        "details => details.open"
    )
    tab_to(page, "el.id === 'id_api_search'")
    page.keyboard.type("pay")
    page.keyboard.press("Enter")
    assert page.url.endswith("/tokens/?q=tok")
    api_list = page.locator("#id_api")
    assert api_list.get_by_role("checkbox").filter(visible=True).count() == 2
    assert page.locator("#id_api_shown").inner_text() == "2 of 5 shown"
    assert not page.get_by_label("Orders v1").is_visible()

    # Tick both, one Tab each (the hidden options are no stops), then apply.
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    assert page.get_by_label("Payments v1").is_checked()
    assert page.get_by_label("Payouts v1").is_checked()
    assert not page.get_by_label("Orders v1").is_checked()
    axe = Axe().run(page)
    problems = [v["id"] for v in axe.response["violations"] if v["id"] != "color-contrast"]
    assert problems == []
    tab_to(page, "el.textContent.trim() === 'Apply filter'")
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"api="))
    pay, payouts = platform["Payments"].pk, platform["Payouts"].pk
    assert sorted(re.findall(r"api=(\d+)", page.url)) == sorted([str(pay), str(payouts)])
    assert owners(page) == ["tok-pay", "tok-payouts"]
    assert chips(page) == ["Search: tok", "API: Payments v1", "API: Payouts v1"]

    # Remove one chip, then Clear all; still the keyboard.
    page.locator("body").focus()
    tab_to(page, "el.textContent.includes('API: Payouts v1')")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: f"api={payouts}" not in url)
    assert owners(page) == ["tok-pay"]
    assert chips(page) == ["Search: tok", "API: Payments v1"]
    assert page.get_by_role("link", name="Remove filter API: Payments v1").is_visible()

    page.locator("body").focus()
    tab_to(page, "el.textContent.trim() === 'Clear all'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tokens/$"))
    assert owners(page) == ["other-pay", "tok-orders", "tok-pay", "tok-payouts"]
    assert chips(page) == []
    time.sleep(0.2)  # let late console messages arrive
    assert [text for text in console if "Content Security Policy" in text] == []


def test_the_same_filter_works_without_javascript(live_server, nojs_page, platform):
    page = nojs_page
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))

    page.get_by_text("Advanced filter", exact=True).click()
    # No search box without JavaScript: every option is there to tick.
    assert not page.locator("#id_api_search").is_visible()
    assert page.locator("#id_api").get_by_role("checkbox").filter(visible=True).count() == 5
    page.get_by_label("Payments v1").check()
    page.get_by_label("Payouts v1").check()
    page.get_by_role("button", name="Apply filter").click()

    page.wait_for_url(re.compile(r"api="))
    assert owners(page) == ["other-pay", "tok-pay", "tok-payouts"]
    assert chips(page) == ["API: Payments v1", "API: Payouts v1"]
    page.get_by_role("link", name="Remove filter API: Payments v1").click()
    page.wait_for_url(lambda url: f"api={platform['Payments'].pk}" not in url)
    assert owners(page) == ["tok-payouts"]


def test_a_reversed_date_range_is_said_on_the_field(live_server, browser_page, platform):
    page = browser_page
    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))

    page.goto(f"{live_server.url}/tokens/?expires_after=2026-12-10&expires_before=2026-12-01")

    message = "The start date 2026-12-10 is after the end date 2026-12-01."
    assert page.get_by_role("alert").filter(has_text=message).is_visible()
    to_box = page.get_by_label("Expires to")
    assert to_box.get_attribute("aria-invalid") == "true"
    assert page.locator(f"#{to_box.get_attribute('aria-describedby')}").inner_text() == message
    assert len(owners(page)) == 4
