"""The Access Tokens list's filters that fit: API and App as checkbox lists, a label on
each date input, applied filters as removable chips, a reversed date range said as such,
and an empty state that tells "nothing matches" from "nothing yet"."""

import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import XSS, AppFactory, api_with_plans, assert_escaped, make_token
from tokens.filters import TokenFilter
from tokens.models import AccessToken, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LIST_URL = reverse("tokens:list")


def _get(client, query=""):
    response = client.get(f"{LIST_URL}?{query}" if query else LIST_URL)
    assert response.status_code == 200
    return response


def _owners(response) -> list[str]:
    return sorted(token.owner for token in response.context["tokens"])


def _applied(query: str) -> list[tuple[str, str]]:
    filterset = TokenFilter(QueryDict(query), queryset=AccessToken.objects.all())
    return [(chip.label, chip.remove_url) for chip in filterset.applied]


def _params(url: str) -> dict[str, list[str]]:
    parts = urlsplit(url)
    assert parts.path == LIST_URL
    return parse_qs(parts.query, keep_blank_values=True)


def _set_created(token, day: str):
    when = timezone.make_aware(datetime.fromisoformat(f"{day}T12:00"))
    AccessToken.objects.filter(pk=token.pk).update(created_at=when)


# --- API and App: checkbox lists ------------------------------------------------------------


def test_api_and_app_are_labelled_checkbox_lists_in_fieldsets(portal_admin_client):
    pay, _ = api_with_plans(name="Payments")
    orders, _ = api_with_plans(name="Orders")
    acme = AppFactory(name="Acme")

    html = _get(portal_admin_client, f"api={orders.pk}").content.decode()

    assert '<select name="api"' not in html and '<select name="app"' not in html
    assert re.search(r"<fieldset><legend[^>]*>API</legend>", html)
    assert re.search(r"<fieldset><legend[^>]*>App</legend>", html)
    for name, obj in (("api", pay), ("api", orders), ("app", acme)):
        box = re.search(rf'<input type="checkbox" name="{name}" value="{obj.pk}"[^>]*>', html)
        assert box, (name, obj)
        box_id = re.search(r'id="([^"]+)"', box.group(0)).group(1)
        assert re.search(rf'<label class="form-check-label" for="{box_id}">{obj}</label>', html)
    checked = re.findall(r'<input type="checkbox" name="api" value="(\d+)"[^>]*\bchecked\b', html)
    assert checked == [str(orders.pk)]


def test_the_option_search_boxes_are_labelled_and_shown_only_with_javascript(
    portal_admin_client,
):
    html = _get(portal_admin_client).content.decode()

    for field, words in (("api", "Search APIs"), ("app", "Search apps")):
        assert f'<label class="visually-hidden" for="id_{field}_search">{words}</label>' in html
        search = re.search(
            rf'<div class="js-only-block[^"]*"><label[^>]*for="id_{field}_search"', html
        )
        assert search, field
        # No name: the words typed only narrow the list, they are never a filter.
        box = re.search(rf'<input type="search" id="id_{field}_search"[^>]*>', html).group(0)
        assert "name=" not in box
        assert f'aria-controls="id_{field}"' in box
        assert f'<div class="choice-list" id="id_{field}" data-choice-list>' in html


def test_several_apis_and_apps_keep_their_query_string(portal_admin_client):
    pay, (pay_gold,) = api_with_plans("Gold", name="Payments")
    orders, (orders_free,) = api_with_plans("Free", name="Orders")
    ship, (ship_free,) = api_with_plans("Free", name="Shipping")
    acme, globex = AppFactory(name="Acme"), AppFactory(name="Globex")
    make_token(owner="acme-pay", app=acme, plans=[pay_gold])
    make_token(owner="globex-orders", app=globex, plans=[orders_free])
    make_token(owner="acme-ship", app=acme, plans=[ship_free])

    response = _get(
        portal_admin_client, f"api={pay.pk}&api={orders.pk}&app={acme.pk}&app={globex.pk}"
    )

    assert _owners(response) == ["acme-pay", "globex-orders"]


# --- The date inputs' labels ----------------------------------------------------------------


@pytest.mark.parametrize(("field", "noun"), [("created", "Created"), ("expires", "Expires")])
def test_each_date_input_has_its_own_label(portal_admin_client, field, noun):
    html = _get(portal_admin_client).content.decode()

    for index, suffix, word in ((0, "after", "from"), (1, "before", "to")):
        input_id = f"id_{field}_{index}"
        assert re.search(
            rf'<input type="date" name="{field}_{suffix}"[^>]*id="{input_id}"', html
        ), input_id
        label = re.search(rf'<label[^>]*for="{input_id}">(.*?)</label>', html).group(1)
        assert re.sub(r"<[^>]+>", "", label) == f"{noun} {word}"
    fieldset = html[html.index(f'id="div_id_{field}"') :].split("</fieldset>")[0]
    assert ">-<" not in fieldset and "</label>-" not in fieldset and ">-" not in fieldset


# --- Applied filters: chips -----------------------------------------------------------------


def test_each_applied_filter_value_is_a_chip_that_removes_only_itself():
    pay, (gold,) = api_with_plans("Gold", name="Payments", version="v2")
    orders, _ = api_with_plans(name="Orders", version="v1")
    acme = AppFactory(name="Acme Checkout")
    query = (
        f"q=ada&api={pay.pk}&api={orders.pk}&app={acme.pk}&status=active&origin=oauth"
        f"&plan={gold.pk}&created_after=2026-01-10&created_before=2026-01-12"
        "&expires_after=2026-03-01&last_used=30&expiring=soon"
        "&job=7d2a5f0e-3c1b-4a8e-9f00-123456789abc&o=-owner&per_page=50&page=3"
    )

    chips = dict(_applied(query))

    assert list(chips) == [
        "Search: ada",
        "API: Payments v2",
        "API: Orders v1",
        "App: Acme Checkout",
        "Status: Active",
        "Origin: OAuth",
        "Plan: Payments – Gold",
        "Created: 2026-01-10 to 2026-01-12",
        "Expires: on or after 2026-03-01",
        "Expiring soon",
        "Last used: Not used in 30 days",
        "Revoked by a job",
    ]
    full = _params(f"{LIST_URL}?{query}")
    removed = {
        "Search: ada": ["q"],
        "App: Acme Checkout": ["app"],
        "Status: Active": ["status"],
        "Origin: OAuth": ["origin"],
        "Plan: Payments – Gold": ["plan"],
        "Created: 2026-01-10 to 2026-01-12": ["created_after", "created_before"],
        "Expires: on or after 2026-03-01": ["expires_after"],
        "Revoked by a job": ["job"],
        "Expiring soon": ["expiring"],
        "Last used: Not used in 30 days": ["last_used"],
    }
    for label, keys in removed.items():
        expected = {k: v for k, v in full.items() if k not in (*keys, "page")}
        assert _params(chips[label]) == expected, label
    # One API of two: the other stays; sort and page size stay, the page goes.
    without_pay = _params(chips["API: Payments v2"])
    assert without_pay["api"] == [str(orders.pk)]
    assert without_pay["o"] == ["-owner"] and without_pay["per_page"] == ["50"]
    assert "page" not in without_pay


def test_an_expiry_range_with_only_an_end_says_so():
    assert [label for label, _ in _applied("expires_before=2026-03-31")] == [
        "Expires: on or before 2026-03-31"
    ]


def test_removing_the_last_filter_leads_to_the_bare_list():
    acme = AppFactory(name="Acme")

    assert _applied(f"app={acme.pk}") == [("App: Acme", LIST_URL)]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "o=owner&per_page=50&page=2",
        "status=",
        "api=abc",
        "api=999999",
        "status=bogus",
        "created_after=2026-13-45",
        "created_after=2026-12-10&created_before=2026-12-01",
        "q=",
    ],
)
def test_only_valid_applied_filters_make_chips(query):
    assert _applied(query) == []


def test_a_search_with_special_characters_is_kept_exactly_in_the_other_chips():
    acme = AppFactory(name='R&D <Lab> "x" 50%')
    text = "a&b=c #1 + 100% ü/?"
    query = QueryDict(mutable=True)
    query["q"] = text
    query["app"] = str(acme.pk)

    chips = _applied(query.urlencode())

    assert [label for label, _ in chips] == [f"Search: {text}", f"App: {acme.name}"]
    assert _params(chips[0][1]) == {"app": [str(acme.pk)]}
    assert _params(chips[1][1]) == {"q": [text]}


def test_a_long_search_is_shortened_on_its_chip():
    ((label, _),) = _applied("q=" + "x" * 300)

    assert label.startswith("Search: xxx") and label.endswith("…")
    assert len(label) < 60


def test_an_api_given_twice_is_one_chip_that_removes_both():
    pay, _ = api_with_plans(name="Payments", version="v1")

    assert _applied(f"api={pay.pk}&api={pay.pk}") == [("API: Payments v1", LIST_URL)]


def test_the_page_shows_the_chips_with_a_clear_all_that_keeps_the_sort(portal_admin_client):
    pay, (gold,) = api_with_plans("Gold", name="Payments", version="v1")
    make_token(owner="Ada", plans=[gold])

    html = _get(portal_admin_client, f"api={pay.pk}&status=active&o=owner").content.decode()

    chips = re.findall(
        r'<a class="filter-chip" href="([^"]+)"><span class="visually-hidden">Remove filter </span>'
        r'([^<]+)<span class="filter-chip-x" aria-hidden="true">×</span></a>',
        html,
    )
    assert [label for _, label in chips] == ["API: Payments v1", "Status: Active"]
    assert chips[0][0] == f"{LIST_URL}?status=active&amp;o=owner"
    assert f'<a class="btn btn-sm btn-link" href="{LIST_URL}?o=owner">Clear all</a>' in html


def test_no_chips_without_filters(portal_admin_client):
    make_token()

    html = _get(portal_admin_client, "o=owner").content.decode()

    assert "filter-chip" not in html
    assert "Clear all" not in html


def test_chip_labels_are_escaped(portal_admin_client):
    app = AppFactory(name=XSS)
    make_token(app=app)

    html = _get(portal_admin_client, f"app={app.pk}").content.decode()

    assert f"App: {XSS}" not in html
    assert_escaped(html)


# --- A reversed date range ------------------------------------------------------------------


def test_a_reversed_date_range_says_so_and_is_not_applied(portal_admin_client):
    early, _ = make_token(owner="early")
    late, _ = make_token(owner="late")
    _set_created(early, "2026-11-20")
    _set_created(late, "2026-12-05")

    response = _get(
        portal_admin_client, "created_after=2026-12-10&created_before=2026-12-01&origin=portal"
    )

    # The range is left out (the other filter still applies): not "nothing matches".
    assert _owners(response) == ["early", "late"]
    html = response.content.decode()
    message = "The start date 2026-12-10 is after the end date 2026-12-01."
    assert "Some filters could not be read and were not applied" in html
    assert f"<li>Created between: {message}</li>" in html
    assert f'<div id="id_created_error" class="invalid-feedback d-block">{message}</div>' in html
    for name in ("created_after", "created_before"):
        date_input = re.search(rf'<input type="date" name="{name}"[^>]*>', html).group(0)
        assert "is-invalid" in date_input
        assert 'aria-describedby="id_created_error"' in date_input
        assert 'aria-invalid="true"' in date_input
    assert "No access tokens match" not in html
    assert [
        label
        for label, _ in _applied("created_after=2026-12-10&created_before=2026-12-01&origin=portal")
    ] == ["Origin: Portal"]


def test_a_one_day_range_is_not_reversed(portal_admin_client):
    token, _ = make_token(owner="that day")
    _set_created(token, "2026-12-01")
    make_token(owner="today")

    response = _get(portal_admin_client, "created_after=2026-12-01&created_before=2026-12-01")

    assert _owners(response) == ["that day"]
    assert "could not be read" not in response.content.decode()


def test_a_reversed_range_is_refused_by_the_export_too(portal_admin_client):
    response = portal_admin_client.get(
        reverse("tokens:export") + "?expires_after=2026-12-10&expires_before=2026-12-01"
    )

    assert response.status_code == 400
    assert "The start date 2026-12-10 is after the end date 2026-12-01." in (
        response.content.decode()
    )


# --- The empty state ------------------------------------------------------------------------


def test_no_match_under_filters_offers_to_clear_them_and_keeps_the_chips(portal_admin_client):
    make_token(owner="Ada", origin=TokenOrigin.PORTAL)

    html = _get(portal_admin_client, "origin=oauth&o=owner").content.decode()

    assert "No access tokens match these filters." in html
    assert f'href="{LIST_URL}?o=owner">Clear filters</a>' in html
    assert "Origin: OAuth" in html
    assert "No access tokens yet." not in html


def test_no_tokens_at_all_says_none_yet_and_offers_a_new_one(portal_admin_client):
    html = _get(portal_admin_client).content.decode()

    assert "No access tokens yet." in html
    assert "match these filters" not in html
    assert "Clear filters" not in html
    assert f'href="{reverse("tokens:create")}">Create the first access token</a>' in html


def test_no_tokens_at_all_offers_no_new_one_to_those_who_may_not_add(support_client):
    html = _get(support_client).content.decode()

    assert "No access tokens yet." in html
    assert "Create the first access token" not in html


def test_an_unread_filter_on_an_empty_platform_is_not_a_no_match(portal_admin_client):
    html = _get(portal_admin_client, "status=bogus").content.decode()

    assert "No access tokens yet." in html
    assert "match these filters" not in html


# --- Permissions and queries ----------------------------------------------------------------


def test_the_filtered_list_still_needs_the_view_permission(plain_client):
    url = f"{LIST_URL}?status=active"

    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert reverse("login") in anonymous["Location"]
    assert plain_client.get(url).status_code == 403


def test_support_staff_see_the_chips_too(support_client):
    make_token(owner="Ada")

    html = _get(support_client, "status=active").content.decode()

    assert "Status: Active" in html


def test_chips_and_checkbox_lists_cost_no_query(portal_admin_client, django_assert_max_num_queries):
    """Every filter applied, two APIs and two apps among them: the chips name them from the
    options that the checkbox lists read anyway (once each), not by reading them again."""
    apis = [api_with_plans("Free", "Gold") for _ in range(3)]
    apps = [AppFactory() for _ in range(3)]
    for index in range(6):
        make_token(app=apps[index % 3], plans=[plans[index % 2] for _, plans in apis])
    every = (
        f"q=Ada&api={apis[0][0].pk}&api={apis[1][0].pk}&app={apps[0].pk}&app={apps[1].pk}"
        f"&status=active&origin=portal&plan={apis[0][1][1].pk}&created_after=2020-01-01"
        "&expires_after=2020-01-01&last_used=30&expiring=soon&o=owner&per_page=50"
    )
    portal_admin_client.get(LIST_URL)  # warm the session and permission caches

    # 15 before the chips and checkbox lists (and with the select boxes) as now.
    with django_assert_max_num_queries(15) as queries:
        html = _get(portal_admin_client, every).content.decode()

    assert html.count('class="filter-chip"') == 12
    for table in ("tokens_api", "tokens_app"):
        # On PostgreSQL the options are read through a server-side cursor (DECLARE … FOR).
        option_reads = [
            sql
            for sql in (
                re.sub(r"^DECLARE .*? CURSOR FOR ", "", q["sql"]) for q in queries.captured_queries
            )
            if sql.startswith(f'SELECT "{table}"."id"') and " WHERE " not in sql
        ]
        assert len(option_reads) == 1, option_reads
