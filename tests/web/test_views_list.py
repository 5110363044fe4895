"""The Access Tokens list: columns, actions, quick search, Advanced filter, sort, pages."""

import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import XSS, XSS_ESCAPED, AppFactory, api_with_plans, assert_escaped, make_token
from tokens.models import AccessToken, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LIST_URL = reverse("tokens:list")


def _listed(response) -> list[str]:
    """Owners of the tokens on the page, in order."""
    assert response.status_code == 200
    return [token.owner for token in response.context["tokens"]]


def _get(client, query=""):
    return client.get(f"{LIST_URL}?{query}" if query else LIST_URL)


def _set_created(token, when):
    AccessToken.objects.filter(pk=token.pk).update(created_at=when)


# --- What the page shows --------------------------------------------------------------------


def test_list_shows_the_columns_of_the_contract(portal_admin_client):
    make_token()

    html = _get(portal_admin_client).content.decode()

    headers = re.findall(r'<th scope="col"[^>]*>(?:<a [^>]*>)?([^<]+)', html)
    assert headers == [
        "Code",
        "Owner",
        "App",
        "Status",
        "APIs",
        "Created",
        "Expires",
        "Last used",
        "Actions",
    ]


def test_each_row_shows_masked_code_owner_app_status_and_apis(portal_admin_client):
    pay, (gold,) = api_with_plans("Gold", name="Payments")
    orders, (free,) = api_with_plans("Free", name="Orders")
    token, secret = make_token(app=AppFactory(name="Acme"), owner="Ada", plans=[gold, free])

    html = _get(portal_admin_client).content.decode()

    assert token.masked_code in html
    assert secret not in html
    row = html[html.index(token.masked_code) :].split("</tr>")[0]
    for text in ("Ada", "Acme", "Active", "Payments", "Orders", "Never"):
        assert text in row


def test_overview_link_on_every_row_edit_link_only_on_active_rows(portal_admin_client):
    active, _ = make_token(owner="active")
    expired, _ = make_token(owner="expired", expired=True)
    revoked, _ = make_token(owner="revoked", revoked=True)

    html = _get(portal_admin_client).content.decode()

    for token in (active, expired, revoked):
        assert f'href="{token.get_absolute_url()}" aria-label="Overview"' in html
    assert f'href="{reverse("tokens:edit", args=[active.public_id])}" aria-label="Edit"' in html
    for token in (expired, revoked):
        assert reverse("tokens:edit", args=[token.public_id]) not in html


def test_support_staff_see_neither_edit_links_nor_new_token_button(support_client):
    active, _ = make_token()

    html = _get(support_client).content.decode()

    assert active.get_absolute_url() in html
    assert reverse("tokens:edit", args=[active.public_id]) not in html
    assert "New access token" not in html
    assert reverse("tokens:create") not in html


def test_administrators_get_the_new_access_token_button(portal_admin_client):
    html = _get(portal_admin_client).content.decode()

    assert f'href="{reverse("tokens:create")}"' in html
    assert "New access token" in html


def test_empty_list_says_so(portal_admin_client):
    make_token(owner="Ada")
    response = _get(portal_admin_client, "q=nothing-matches")

    assert _listed(response) == []
    assert "No access tokens match these filters." in response.content.decode()


def test_advanced_filter_submits_by_get_so_a_filtered_list_is_a_link(
    portal_admin_client,
):
    # The quick search posts (a pasted token must not land in a URL) and redirects to a
    # GET address: see tests/web/test_views_list_search.py.
    html = _get(portal_admin_client).content.decode()

    assert re.search(r'<form method="get" aria-label="Advanced filter"', html)
    assert "Advanced filter" in html


# --- Quick search ---------------------------------------------------------------------------


@pytest.fixture
def three_tokens():
    acme, globex = AppFactory(name="Acme Checkout"), AppFactory(name="Globex Mobile")
    return {
        "ana": make_token(app=acme, owner="ana@acme.example"),
        "bruno": make_token(app=globex, owner="Bruno", extra_fields=[["Ticket", "SUP-2291"]]),
        "carla": make_token(app=globex, owner="Carla"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=ANA%40acme", ["ana@acme.example"]),
        ("q=globex", ["Carla", "Bruno"]),
        ("q=sup-2291", ["Bruno"]),
        ("q=", ["Carla", "Bruno", "ana@acme.example"]),
    ],
)
def test_quick_search_by_owner_app_or_extra_field_value(
    portal_admin_client, three_tokens, query, expected
):
    assert _listed(_get(portal_admin_client, query)) == expected


def test_quick_search_finds_an_accented_extra_field_value(portal_admin_client):
    make_token(owner="paulista", extra_fields=[["Cidade", "São Paulo"]])
    make_token(owner="carioca", extra_fields=[["Cidade", "Rio de Janeiro"]])

    assert _listed(portal_admin_client.get(LIST_URL, {"q": "São Paulo"})) == ["paulista"]


def test_quick_search_by_a_pasted_full_token_lists_exactly_that_token(
    portal_admin_client, three_tokens
):
    _, secret = three_tokens["bruno"]

    assert _listed(portal_admin_client.get(LIST_URL, {"q": f" {secret} "})) == ["Bruno"]


def test_quick_search_by_code_prefix_or_masked_code(portal_admin_client, three_tokens):
    token, secret = three_tokens["carla"]

    assert _listed(portal_admin_client.get(LIST_URL, {"q": secret[:9]})) == ["Carla"]
    assert _listed(portal_admin_client.get(LIST_URL, {"q": token.masked_code})) == ["Carla"]


def test_quick_search_keeps_the_query_in_the_search_box(portal_admin_client, three_tokens):
    html = portal_admin_client.get(LIST_URL, {"q": "Carla"}).content.decode()

    assert re.search(r'<input[^>]*name="q"[^>]*value="Carla"', html)


# --- Advanced filter ------------------------------------------------------------------------


def test_filter_by_several_apis_lists_each_matching_token_once(portal_admin_client):
    pay, (pay_gold,) = api_with_plans("Gold")
    orders, (orders_free,) = api_with_plans("Free")
    _, (ship_basic,) = api_with_plans("Basic")
    make_token(owner="both", plans=[pay_gold, orders_free])
    make_token(owner="pay-only", plans=[pay_gold])
    make_token(owner="orders-only", plans=[orders_free])
    make_token(owner="shipping", plans=[ship_basic])
    make_token(owner="none")

    listed = _listed(_get(portal_admin_client, f"api={pay.pk}&api={orders.pk}"))

    assert sorted(listed) == ["both", "orders-only", "pay-only"]


def test_filter_by_several_apps(portal_admin_client):
    acme, globex, initech = AppFactory(), AppFactory(), AppFactory()
    make_token(app=acme, owner="acme")
    make_token(app=globex, owner="globex")
    make_token(app=initech, owner="initech")

    listed = _listed(_get(portal_admin_client, f"app={acme.pk}&app={initech.pk}"))

    assert sorted(listed) == ["acme", "initech"]


@pytest.fixture
def every_status():
    make_token(owner="active")
    make_token(owner="active-until-tomorrow", expires_at=timezone.now() + timedelta(days=1))
    make_token(owner="expired", expired=True)
    make_token(owner="revoked", revoked=True)
    make_token(owner="revoked-and-expired", revoked=True, expired=True)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("active", ["active", "active-until-tomorrow"]),
        ("expired", ["expired"]),
        ("revoked", ["revoked", "revoked-and-expired"]),
    ],
)
def test_filter_by_status_computes_expired_from_the_clock(
    portal_admin_client, every_status, status, expected
):
    response = _get(portal_admin_client, f"status={status}")

    assert sorted(_listed(response)) == expected
    badges = re.findall(r'<span class="badge [^"]*">(\w+)</span>', response.content.decode())
    assert set(badges) == {status.capitalize()}


def test_a_token_whose_expiry_just_passed_is_listed_as_expired(portal_admin_client):
    token, _ = make_token(owner="soon", expires_at=timezone.now() + timedelta(seconds=30))
    assert _listed(_get(portal_admin_client, "status=active")) == ["soon"]

    later = timezone.now() + timedelta(minutes=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: later)
        assert _listed(_get(portal_admin_client, "status=active")) == []
        response = _get(portal_admin_client, "status=expired")

    assert _listed(response) == ["soon"]
    assert "Expired" in response.content.decode()


def test_filter_by_origin(portal_admin_client):
    make_token(owner="portal")
    make_token(owner="oauth", origin=TokenOrigin.OAUTH)

    assert _listed(_get(portal_admin_client, "origin=oauth")) == ["oauth"]
    assert _listed(_get(portal_admin_client, "origin=portal")) == ["portal"]


def test_filter_by_plan(portal_admin_client):
    _, (free, gold) = api_with_plans("Free", "Gold")
    make_token(owner="free", plans=[free])
    make_token(owner="gold", plans=[gold])

    assert _listed(_get(portal_admin_client, f"plan={gold.pk}")) == ["gold"]


def test_filter_by_created_date_range_includes_both_end_days(portal_admin_client):
    tz = timezone.get_current_timezone()
    for owner, day, hour in [
        ("jan09", 9, 23),
        ("jan10", 10, 0),
        ("jan12", 12, 23),
        ("jan13", 13, 0),
    ]:
        token, _ = make_token(owner=owner)
        _set_created(token, datetime(2026, 1, day, hour, 30, tzinfo=tz))

    response = _get(portal_admin_client, "created_after=2026-01-10&created_before=2026-01-12")

    assert _listed(response) == ["jan12", "jan10"]


def test_filter_by_expiry_date_range(portal_admin_client):
    today = timezone.localdate()
    for owner, days in [("in5", 5), ("in20", 20), ("in40", 40)]:
        make_token(owner=owner, expires_at=timezone.now() + timedelta(days=days))
    make_token(owner="never")

    after = (today + timedelta(days=10)).isoformat()
    before = (today + timedelta(days=30)).isoformat()
    response = _get(portal_admin_client, f"expires_after={after}&expires_before={before}")

    assert _listed(response) == ["in20"]


def test_filters_combine_and_the_form_shows_them_open(portal_admin_client):
    acme = AppFactory()
    make_token(app=acme, owner="acme-oauth", origin=TokenOrigin.OAUTH)
    make_token(app=acme, owner="acme-portal")
    make_token(owner="other-oauth", origin=TokenOrigin.OAUTH)

    response = _get(portal_admin_client, f"app={acme.pk}&origin=oauth")

    assert _listed(response) == ["acme-oauth"]
    html = response.content.decode()
    assert re.search(r"<details[^>]*\bopen\b", html)
    assert re.search(rf'<input type="checkbox" name="app" value="{acme.pk}"[^>]*checked', html)


# --- Sorting --------------------------------------------------------------------------------


def test_sort_by_owner_both_ways(portal_admin_client):
    for owner in ("bravo", "alpha", "charlie"):
        make_token(owner=owner)

    assert _listed(_get(portal_admin_client, "o=owner")) == ["alpha", "bravo", "charlie"]
    assert _listed(_get(portal_admin_client, "o=-owner")) == ["charlie", "bravo", "alpha"]


def test_default_order_is_newest_first(portal_admin_client):
    for days, owner in [(3, "old"), (1, "new"), (2, "middle")]:
        token, _ = make_token(owner=owner)
        _set_created(token, timezone.now() - timedelta(days=days))

    assert _listed(_get(portal_admin_client)) == ["new", "middle", "old"]


def test_sort_links_keep_the_filters_and_toggle_the_direction(portal_admin_client):
    make_token()

    html = _get(portal_admin_client, "status=active&o=owner").content.decode()

    owner_header = re.search(
        r'<th scope="col"[^>]* aria-sort="(\w+)"><a [^>]*href="([^"]+)">Owner', html
    )
    assert owner_header.group(1) == "ascending"
    link = owner_header.group(2).replace("&amp;", "&")
    assert "status=active" in link
    assert "o=-owner" in link


@pytest.mark.parametrize("sort", ["owner", "-app", "expires", "last_used"])
def test_sorting_by_a_column_with_ties_pages_through_every_token_once(portal_admin_client, sort):
    # Enough equal rows that PostgreSQL's sort returns ties in a different order per page.
    app = AppFactory()
    for _ in range(80):
        make_token(app=app, owner="same owner")

    seen = []
    for page in range(1, 9):
        response = _get(portal_admin_client, f"o={sort}&per_page=10&page={page}")
        seen += [t.pk for t in response.context["tokens"]]

    assert len(seen) == 80
    assert len(set(seen)) == 80


# --- Pages ----------------------------------------------------------------------------------


@pytest.fixture
def twenty_five_tokens():
    app = AppFactory()
    for index in range(25):
        token, _ = make_token(app=app, owner=f"owner {index:02d}")
        _set_created(token, timezone.now() - timedelta(minutes=index))


def test_pages_split_the_list(portal_admin_client, twenty_five_tokens):
    response = _get(portal_admin_client, "per_page=10&page=3")

    assert _listed(response) == [f"owner {i:02d}" for i in range(20, 25)]
    assert "Page 3 of 3" in response.content.decode()
    assert "25 tokens" in response.content.decode()


@pytest.mark.parametrize(("page", "expected_page"), [("99", 3), ("abc", 1), ("-1", 1), ("", 1)])
def test_a_bad_or_out_of_range_page_shows_a_real_page(
    portal_admin_client, twenty_five_tokens, page, expected_page
):
    response = _get(portal_admin_client, f"per_page=10&page={page}")

    assert response.status_code == 200
    assert response.context["page_obj"].number == expected_page
    assert f"Page {expected_page} of 3" in response.content.decode()


def test_page_links_keep_the_filters(portal_admin_client, twenty_five_tokens):
    html = _get(portal_admin_client, "status=active&per_page=10&page=2").content.decode()

    next_link = re.search(r'href="([^"]+)">Next<', html).group(1).replace("&amp;", "&")
    assert "status=active" in next_link
    assert "per_page=10" in next_link
    assert next_link.endswith("page=3")


@pytest.mark.parametrize("per_page", ["7", "abc", "100000"])
def test_an_unsupported_page_size_falls_back_to_25(
    portal_admin_client, twenty_five_tokens, per_page
):
    response = _get(portal_admin_client, f"per_page={per_page}")

    assert response.context["page_obj"].paginator.per_page == 25


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "api=abc",
        "api=999999",
        "app=%00",
        "status=bogus",
        "origin=carrier",
        "plan=1.5",
        "api=9223372036854775808",
        "app=-9223372036854775809",
        "plan=99999999999999999999",
        "created_after=2026-13-45",
        "expires_before=yesterday",
        "o=digest",
        "q=%00",
        "q=" + "x" * 5000,
        "page=99999999999999999999999",
    ],
)
def test_bad_filter_values_never_break_the_page(portal_admin_client, query):
    make_token(owner="still listed")

    response = _get(portal_admin_client, query)

    assert response.status_code == 200
    html = response.content.decode()
    if not query.startswith(("page=", "q=x")):
        assert "Some filters could not be read and were not applied" in html


def test_a_bad_filter_is_dropped_but_the_good_ones_still_apply(portal_admin_client):
    make_token(owner="portal")
    make_token(owner="oauth", origin=TokenOrigin.OAUTH)

    response = _get(portal_admin_client, "origin=oauth&status=bogus")

    assert _listed(response) == ["oauth"]
    assert "Status:" in response.content.decode()


# --- Query count ----------------------------------------------------------------------------


def _fill(count, apis):
    apps = [AppFactory() for _ in range(3)]
    for index in range(count):
        make_token(app=apps[index % 3], plans=[plans[index % 2] for _, plans in apis])


def test_list_query_count_does_not_grow_with_the_tokens(
    portal_admin_client, django_assert_num_queries
):
    apis = [api_with_plans("Free", "Gold") for _ in range(4)]
    _fill(3, apis)
    url = f"{LIST_URL}?per_page=50"
    portal_admin_client.get(url)  # warm the session and permission caches alike

    with CaptureQueriesContext(connection) as few:
        response = portal_admin_client.get(url)
    assert len(response.context["tokens"]) == 3

    _fill(37, apis)
    with django_assert_num_queries(len(few.captured_queries)):
        response = portal_admin_client.get(url)

    assert len(response.context["tokens"]) == 40
    assert all(len(t.api_links.all()) == 4 for t in response.context["tokens"])
    assert len(few.captured_queries) <= 12


def test_filtered_list_query_count_does_not_grow_with_the_tokens(
    portal_admin_client, django_assert_max_num_queries
):
    apis = [api_with_plans("Free", "Gold") for _ in range(3)]
    _fill(40, apis)
    query = f"?per_page=50&status=active&api={apis[0][0].pk}&api={apis[1][0].pk}&o=owner&q=Ada"

    # 12 for the page, plus the quick search's own lookups: the apps whose name matches
    # (so that the search condition is on the token table alone) and, on SQLite, how
    # many candidates the trigram index holds (tokens.search).
    with django_assert_max_num_queries(14):
        response = portal_admin_client.get(LIST_URL + query)

    assert len(response.context["tokens"]) == 40


def test_a_date_range_in_the_link_opens_the_advanced_filter_with_the_dates_filled_in(
    portal_admin_client,
):
    html = _get(portal_admin_client, "created_after=2026-01-10").content.decode()

    assert re.search(r"<details[^>]*\bopen\b", html)
    assert re.search(r'<input[^>]*name="created_after"[^>]*value="2026-01-10"', html)
    assert 'name="created_before"' in html
    assert 'name="expires_after"' in html


# --- HTML escaping --------------------------------------------------------------------------


def test_user_text_is_escaped_in_the_list(portal_admin_client, hostile_token):
    html = _get(portal_admin_client).content.decode()

    assert_escaped(html)
    assert f"Owner {XSS_ESCAPED}" in html
    assert f"App {XSS_ESCAPED}" in html
    assert f"API {XSS_ESCAPED}" in html


def test_the_query_string_is_escaped_where_the_page_repeats_it(portal_admin_client):
    make_token()

    response = portal_admin_client.get(LIST_URL, {"q": XSS, f"x{XSS}": XSS, "per_page": "10"})

    assert response.status_code == 200
    assert_escaped(response.content.decode())
