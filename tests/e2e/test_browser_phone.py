"""The portal on a 390 px phone (issue 15, item 5) and sorting you can see (item 2), in a
real headless Chromium against a live server."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.e2e.browser import log_in
from tests.factories import AppFactory, PlanFactory, UserFactory, make_token
from tokens import services
from tokens.models import Job, JobKind, JobStatus

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
LONG_OWNER = "maximiliana.featherstonehaugh-cholmondeley@integration-partners.example"

# Sideways scrolling: of the page itself, or of any scroll box (a .table-responsive) on it.
OVERFLOW = """() => {
  const wide = [...document.querySelectorAll('.table-responsive, .module, table')]
    .filter((el) => el.scrollWidth > el.clientWidth + 1)
    .map((el) => `${el.tagName}.${el.className}: ${el.scrollWidth} > ${el.clientWidth}`);
  const root = document.documentElement;
  if (root.scrollWidth > window.innerWidth) {
    wide.push(`page: ${root.scrollWidth} > ${window.innerWidth}`);
  }
  return wide;
}"""


@pytest.fixture
def platform():
    gold = PlanFactory(
        name="Gold", api__name="Payments", api__base_path="/payments/v2/merchant-settlements"
    )
    app = AppFactory(name="Acme Checkout")
    token, _ = make_token(app=app, owner="Ada Lovelace", plans=[gold])
    services.token_update(
        token=token,
        expected_version=token.version,
        owner=LONG_OWNER,
        extra_fields=[("Ticket", "SUP-4242-" + "x" * 60)],
        plans=[gold],
        actor="e2e",
    )
    others = [
        make_token(app=app, owner="Grace Hopper", expires_at=timezone.now() + timedelta(days=30))[
            0
        ],
        make_token(app=app, owner="Barbara Liskov")[0],
    ]
    Job.objects.create(
        kind=JobKind.BULK_REVOKE,
        actor_label="root",
        description="Revoke the tokens matching status=active, app=Acme Checkout and more words",
        cutoff=timezone.now(),
        status=JobStatus.DONE,
        total=1200,
        processed=1200,
        revoked=1180,
    )
    UserFactory(username="root", password=PASSWORD, is_staff=True, is_superuser=True)
    return {"token": token, "others": others, "app": app}


def _owners(page) -> list[str]:
    return page.locator("table.table-tokens tbody td[data-label='Owner']").all_inner_texts()


def test_the_list_on_a_phone_shows_cards_without_sideways_scrolling(
    live_server, phone_page, platform
):
    page = phone_page
    log_in(page, live_server.url, "root", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))

    assert not page.locator("table.table-tokens thead").is_visible()
    cards = page.locator("table.table-tokens tbody tr")
    assert cards.count() == 3
    widths = set()
    for index in range(3):
        card = cards.nth(index)
        box = card.bounding_box()
        widths.add(round(box["width"]))
        assert card.locator("td.code").is_visible()
        for label in ("Owner", "Status", "Expires"):
            assert card.locator(f"td[data-label='{label}']").is_visible(), label
        assert card.get_by_role("checkbox").is_visible()
        for name in ("Overview", "Edit"):
            link = card.get_by_role("link", name=name)
            assert link.is_visible()
            target = link.bounding_box()
            assert target["width"] >= 24 and target["height"] >= 24, (name, target)
        # A card: code and actions side by side on the first line, the rest below.
        code_box = card.locator("td.code").bounding_box()
        owner_box = card.locator("td[data-label='Owner']").bounding_box()
        assert owner_box["y"] >= code_box["y"] + code_box["height"] - 1
    assert max(widths) <= 390
    assert page.get_by_text(LONG_OWNER).is_visible()
    assert page.evaluate(OVERFLOW) == []

    # The header's "select the page" box is hidden with it: the bulk bar has its own.
    select_page = page.get_by_role("checkbox", name="Select this page")
    select_page.check()
    row_boxes = cards.get_by_role("checkbox")
    assert all(row_boxes.nth(i).is_checked() for i in range(row_boxes.count()))
    assert "3 selected on this page" in page.locator("[data-bulk-count]").inner_text()
    select_page.uncheck()
    assert not any(row_boxes.nth(i).is_checked() for i in range(row_boxes.count()))

    # The column headers are hidden: the "Sort by" menu sorts.
    page.get_by_label("Sort by").select_option(label="Owner, Z to A")
    page.get_by_role("button", name="Sort", exact=True).click()
    page.wait_for_url(re.compile(r"o=-owner"))
    owners = _owners(page)
    assert owners == sorted(owners, reverse=True)
    assert page.get_by_label("Sort by").input_value() == "-owner"
    assert page.evaluate(OVERFLOW) == []

    # Pages: all of First, Previous, Page n of m, Next and Last, and the bulk bar's
    # "Revoke all tokens of <app>" for a list filtered by one app.
    for index in range(20):
        make_token(app=platform["app"], owner=f"Owner {index:02d}")
    page.goto(f"{live_server.url}/tokens/?app={platform['app'].pk}&per_page=10&page=2")
    assert page.get_by_role("link", name="Last").is_visible()
    assert page.get_by_role("link", name="Revoke all tokens of Acme Checkout").is_visible()
    assert page.evaluate(OVERFLOW) == []


def test_overview_history_jobs_and_admin_revoke_fit_a_phone(live_server, phone_page, platform):
    page, token = phone_page, platform["token"]
    log_in(page, live_server.url, "root", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))

    page.goto(f"{live_server.url}/tokens/{token.public_id}/")
    assert page.evaluate(OVERFLOW) == []
    page.get_by_role("tab", name="APIs and Plans").click()
    plans = page.locator("#apis-and-plans")
    assert "/payments/v2/merchant-settlements" in plans.inner_text()
    assert page.evaluate(OVERFLOW) == []

    page.goto(f"{live_server.url}/tokens/{token.public_id}/history/")
    assert LONG_OWNER in page.locator("table").inner_text()
    assert page.evaluate(OVERFLOW) == []

    page.goto(f"{live_server.url}/tokens/{token.public_id}/edit/")
    page.get_by_role("tab", name="APIs and Plans").click()
    assert page.get_by_label("Payments v1").is_visible()
    assert page.evaluate(OVERFLOW) == []
    page.goto(f"{live_server.url}/tokens/new/")
    assert page.get_by_label("Payments v1").is_visible()
    assert page.evaluate(OVERFLOW) == []

    page.goto(f"{live_server.url}/tokens/jobs/")
    assert page.get_by_text("1,180 revoked").is_visible()
    assert page.evaluate(OVERFLOW) == []

    for path in (
        f"/admin/tokens/accesstoken/{token.pk}/revoke/",
        f"/admin/tokens/app/{platform['app'].pk}/revoke-all-tokens/",
        f"/admin/tokens/app/{platform['app'].pk}/regenerate-secret/",
    ):
        page.goto(f"{live_server.url}{path}")
        assert page.locator("#content-main").is_visible(), path
        assert page.evaluate(OVERFLOW) == [], path


def test_sorted_column_shows_its_direction_and_a_second_click_reverses(
    live_server, browser_page, platform
):
    page = browser_page
    log_in(page, live_server.url, "root", PASSWORD)
    page.wait_for_url(re.compile(r"/tokens/$"))
    owner_header = page.locator("th", has=page.get_by_role("link", name="Owner", exact=True))
    assert owner_header.get_attribute("aria-sort") == "none"
    assert owner_header.locator("i.fa-sort").count() == 1
    # Newest first by default: the Created column says so.
    created_header = page.locator("th", has=page.get_by_role("link", name="Created"))
    assert created_header.get_attribute("aria-sort") == "descending"

    page.get_by_role("link", name="Owner", exact=True).click()
    page.wait_for_url(re.compile(r"o=owner"))
    assert owner_header.get_attribute("aria-sort") == "ascending"
    assert owner_header.locator("i.fa-sort-up").is_visible()
    assert created_header.get_attribute("aria-sort") == "none"
    ascending = _owners(page)
    assert ascending == sorted(ascending)

    page.get_by_role("link", name="Owner", exact=True).click()
    page.wait_for_url(re.compile(r"o=-owner"))
    assert owner_header.get_attribute("aria-sort") == "descending"
    assert owner_header.locator("i.fa-sort-down").is_visible()
    assert _owners(page) == list(reversed(ascending))


def test_a_table_that_scrolls_sideways_is_reachable_by_keyboard(live_server, chromium, platform):
    from axe_playwright_python.sync_playwright import Axe

    context = chromium.new_context(viewport={"width": 800, "height": 900})
    page = context.new_page()
    try:
        log_in(page, live_server.url, "root", PASSWORD)
        page.wait_for_url(re.compile(r"/tokens/$"))
        region = page.get_by_role("region", name="Access tokens table")
        assert region.evaluate("(el) => el.scrollWidth > el.clientWidth")  # it does scroll
        results = Axe().run(page, options={"runOnly": ["scrollable-region-focusable"]})
        assert results.violations_count == 0, results.generate_report()
        region.focus()
        assert region.evaluate("(el) => getComputedStyle(el).outlineStyle") == "solid"
    finally:
        context.close()
