"""Relative times in a real browser: the exact time shows when one is reached with the
keyboard (and is in the accessibility tree), and the list's date cells stay on one line
at 1366 px."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from portal import timefmt
from tests.e2e.browser import log_in
from tests.factories import AppFactory, UserFactory, make_token
from tokens.models import AccessToken

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


def test_a_relative_time_reached_by_keyboard_shows_the_exact_time_and_dates_do_not_wrap(
    live_server, laptop_page
):
    page = laptop_page
    app = AppFactory(name="Acme Checkout with a rather long application name")
    token, _ = make_token(
        app=app,
        owner="someone.with.a.long.address@subsidiary.example.com",
        expires_at=timezone.now() + timedelta(days=3, hours=2),
    )
    for number in range(3):
        make_token(app=app, owner=f"owner-{number}@example.com")
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    token.refresh_from_db()
    UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])

    log_in(page, live_server.url, "ada", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))

    row = page.get_by_role("row").filter(has_text=token.masked_code)
    expires = row.locator("time.when-relative").nth(1)
    tooltip = expires.locator(".when-exact")
    exact = timefmt.exact(token.expires_at)
    assert expires.inner_text().startswith("in 3 days")
    assert tooltip.bounding_box()["width"] <= 1  # visually hidden until reached

    # From the row's checkbox, Tab on to the Expires cell (Created comes first).
    row.get_by_role("checkbox").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if expires.evaluate("el => el === document.activeElement"):
            break
    assert expires.evaluate("el => el === document.activeElement")
    assert tooltip.is_visible()
    assert tooltip.inner_text().strip() == exact
    # Above the time, not over it, and inside the table's scroll box (not cut off).
    tip, time, box = expires.evaluate(
        """el => [el.querySelector('.when-exact'), el, el.closest('.table-responsive')]
            .map(e => { const r = e.getBoundingClientRect();
                        return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; })"""
    )
    assert tip["right"] - tip["left"] > 100
    assert tip["bottom"] <= time["top"] + 1
    assert box["left"] <= tip["left"] and tip["right"] <= box["right"] and box["top"] <= tip["top"]
    # Escape dismisses it without moving the focus (WCAG 1.4.13); it returns next time.
    page.keyboard.press("Escape")
    assert expires.evaluate("el => el === document.activeElement")
    assert tooltip.bounding_box()["width"] <= 1
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert expires.evaluate("el => el === document.activeElement")
    assert tooltip.is_visible()
    # Screen readers get it all along: it is in the element's accessible name.
    snapshot = row.aria_snapshot()
    assert f"in 3 days {exact}" in snapshot

    # Every date cell on one line: one box per element, of one line's height.
    page.evaluate("document.activeElement.blur()")
    lines = page.locator("tbody time.when-relative").evaluate_all(
        """els => els.map(el => {
            const style = getComputedStyle(el);
            return {boxes: el.getClientRects().length, height: el.getBoundingClientRect().height,
                    line: parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.5};
        })"""
    )
    assert len(lines) == 4 + 1 + 1  # Created of all four; Expires and Last used of one
    for line in lines:
        assert line["boxes"] == 1
        assert line["height"] <= line["line"] * 1.2
