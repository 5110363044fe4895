"""An administrator's day with the keyboard alone, in a real Chromium: no click, no mouse.

Search, open the Advanced filter, pick two APIs, apply, sort, open an Overview, switch
tabs with the arrow keys, EDIT and save, REVOKE and CONFIRM; then the gateway answers 401.
"""

import re
import urllib.error
import urllib.request

import pytest

from tests.factories import AppFactory, PlanFactory, UserFactory, make_token
from tokens.models import AccessToken

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def platform(db):
    gold = PlanFactory(name="Gold", api__name="Payments", api__base_path="/payments")
    free = PlanFactory(name="Free", api__name="Weather", api__base_path="/weather")
    maps = PlanFactory(name="Basic", api__name="Maps", api__base_path="/maps")
    app = AppFactory(name="Acme Checkout")
    tokens = {
        "zed": make_token(app=app, owner="Zed Shaw (ops)", plans=[gold]),
        "ada": make_token(app=app, owner="Ada Lovelace (ops)", plans=[free]),
        "maps": make_token(app=app, owner="Mary Maps (ops)", plans=[maps]),
        "other": make_token(app=app, owner="Grace Hopper", plans=[gold]),
    }
    UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])
    return tokens


def gateway_status(base_url: str, secret: str) -> int:
    request = urllib.request.Request(
        f"{base_url}/gateway/auth",
        headers={"Authorization": f"Bearer {secret}", "X-Original-URI": "/payments/charges"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def is_focused(locator) -> bool:
    return locator.evaluate("element => element === document.activeElement")


def tab_to(page, locator, *, limit: int = 120, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until ``locator`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if is_focused(locator):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"{locator} never received the focus in {limit} presses of Tab")


def owners_in_list(page) -> list[str]:
    return [
        text.strip()
        for text in page.locator(
            "table.table-tokens tbody td[data-label='Owner']"
        ).all_inner_texts()
    ]


def test_a_day_with_the_keyboard_alone(live_server, laptop_page, platform):
    page = laptop_page
    page.goto(f"{live_server.url}/accounts/login/")
    tab_to(page, page.get_by_label("Username"))
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tokens/$"))

    # Search.
    tab_to(page, page.get_by_role("searchbox", name="Search"))
    page.keyboard.type("(ops)")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=%28ops%29"))
    assert sorted(owners_in_list(page)) == [
        "Ada Lovelace (ops)",
        "Mary Maps (ops)",
        "Zed Shaw (ops)",
    ]

    # Open the Advanced filter, pick two APIs, apply.
    summary = page.locator("summary", has_text="Advanced filter")
    tab_to(page, summary)
    page.keyboard.press("Enter")
    for api in ("Payments", "Weather"):
        tab_to(page, page.get_by_role("checkbox", name=f"{api} v1", exact=True))
        page.keyboard.press("Space")
    tab_to(page, page.get_by_role("button", name="Apply filter"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"api=.*api="))
    assert sorted(owners_in_list(page)) == ["Ada Lovelace (ops)", "Zed Shaw (ops)"]

    # Sort by owner: the header says so, and the rows follow.
    tab_to(page, page.get_by_role("link", name="Owner", exact=True))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"o=owner"))
    assert page.locator("th", has_text="Owner").get_attribute("aria-sort") == "ascending"
    assert owners_in_list(page) == ["Ada Lovelace (ops)", "Zed Shaw (ops)"]

    # Open Zed's Overview; switch tabs with the arrow keys.
    token, secret = platform["zed"]
    assert gateway_status(live_server.url, secret) == 200
    row = page.locator("table.table-tokens tbody tr", has_text="Zed Shaw")
    tab_to(page, row.get_by_role("link", name="Overview"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/"))
    basic = page.get_by_role("tab", name="Basic info")
    tab_to(page, basic)
    page.keyboard.press("ArrowRight")
    apis = page.get_by_role("tab", name="APIs and Plans")
    assert apis.get_attribute("aria-selected") == "true" and is_focused(apis)
    assert page.locator("#apis-and-plans").is_visible()
    assert "Gold" in page.locator("#apis-and-plans").inner_text()
    page.keyboard.press("ArrowLeft")
    assert basic.get_attribute("aria-selected") == "true"

    # EDIT and save.
    tab_to(page, page.get_by_role("link", name="EDIT"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/edit/$"))
    tab_to(page, page.get_by_label("Owner"))
    page.keyboard.press("Control+A")
    page.keyboard.type("Zed A. Shaw (ops)")
    tab_to(page, page.get_by_role("button", name="Save Edit"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/(#.*)?$"))
    assert page.get_by_role("status").filter(has_text="was saved").is_visible()
    token.refresh_from_db()
    assert token.owner == "Zed A. Shaw (ops)"

    # REVOKE and CONFIRM.
    tab_to(page, page.get_by_role("link", name="REVOKE"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/revoke/$"))
    assert "HTTP 401" in page.get_by_role("alert").first.inner_text()
    tab_to(page, page.get_by_role("textbox", name=re.compile(r"^Reason")))
    page.keyboard.type("Shown on a screen share")
    tab_to(page, page.get_by_role("button", name="CONFIRM"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/tokens/{token.public_id}/(#.*)?$"))
    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revocation_reason == "Shown on a screen share"
    assert gateway_status(live_server.url, secret) == 401
    other, other_secret = platform["other"]
    assert AccessToken.objects.get(pk=other.pk).status == "active"
    assert gateway_status(live_server.url, other_secret) == 200
