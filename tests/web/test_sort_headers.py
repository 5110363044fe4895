"""Sorting you can see (issue 15, item 2): each sortable header of the Access Tokens list
is a link with a sort icon; the sorted one has ``aria-sort`` and an arrow in its direction;
a second click reverses. On a phone the headers are hidden and a "Sort by" menu sorts."""

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.template import Context, Template
from django.urls import reverse

from tests.factories import make_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LIST_URL = reverse("tokens:list")
SORTABLE = {"Code": "code", "Owner": "owner", "App": "app", "Created": "created"}
SORTABLE |= {"Expires": "expires", "Last used": "last_used"}


class _Headers(HTMLParser):
    """The list's column headers: {label: {"aria-sort", "href", "icon", "link text"}}, and
    the options of the "Sort by" menu as (value, selected, label)."""

    def __init__(self):
        super().__init__()
        self.headers, self.options, self.hidden = {}, [], []
        self._th = self._option = None
        self._in_sort_menu = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "th" and attrs.get("scope") == "col":
            self._th = {"aria-sort": attrs.get("aria-sort"), "text": ""}
        elif self._th is not None and tag == "a":
            self._th["href"] = attrs["href"]
        elif self._th is not None and tag == "i":
            self._th["icon"] = attrs["class"].split()
            self._th["icon-hidden"] = attrs.get("aria-hidden")
        elif tag == "form" and "sort-menu" in (attrs.get("class") or ""):
            self._in_sort_menu = True
        elif self._in_sort_menu and tag == "input":
            self.hidden.append((attrs["name"], attrs["value"]))
        elif self._in_sort_menu and tag == "option":
            self._option = [attrs["value"], "selected" in attrs, ""]

    def handle_data(self, data):
        if self._th is not None:
            self._th["text"] += data
        if self._option is not None:
            self._option[2] += data

    def handle_endtag(self, tag):
        if tag == "th" and self._th is not None:
            self.headers[self._th["text"].strip()] = self._th
            self._th = None
        elif tag == "option" and self._option is not None:
            self.options.append(tuple(self._option))
            self._option = None
        elif tag == "form":
            self._in_sort_menu = False


def _page(client, query=""):
    response = client.get(f"{LIST_URL}?{query}" if query else LIST_URL)
    assert response.status_code == 200
    parser = _Headers()
    parser.feed(response.content.decode())
    return parser


def _query(href: str) -> dict:
    return parse_qs(urlsplit(href).query)


def test_every_sortable_header_is_a_link_named_by_its_label_with_a_hidden_sort_icon(
    portal_admin_client,
):
    make_token()

    headers = _page(portal_admin_client, "o=owner").headers

    for label, key in SORTABLE.items():
        header = headers[label]
        assert header["text"] == label  # the link's accessible name: the label, nothing more
        assert header["icon-hidden"] == "true"
        assert "fa-solid" in header["icon"]
        assert _query(header["href"])["o"] in ([key], [f"-{key}"])
    for label in ("Status", "APIs", "Actions"):
        assert headers[label]["aria-sort"] is None
        assert "href" not in headers[label]


def test_the_sorted_column_shows_ascending_and_a_click_reverses_it(portal_admin_client):
    make_token()

    headers = _page(portal_admin_client, "o=owner").headers

    assert headers["Owner"]["aria-sort"] == "ascending"
    assert "fa-sort-up" in headers["Owner"]["icon"]
    assert _query(headers["Owner"]["href"])["o"] == ["-owner"]
    for label in set(SORTABLE) - {"Owner"}:
        assert headers[label]["aria-sort"] == "none", label
        assert "fa-sort" in headers[label]["icon"], label
        assert _query(headers[label]["href"])["o"] == [SORTABLE[label]]


def test_a_second_click_sorts_descending_and_a_third_ascending_again(portal_admin_client):
    make_token()
    first = _page(portal_admin_client, "o=owner").headers["Owner"]["href"]

    second = _page(portal_admin_client, first.lstrip("?")).headers["Owner"]

    assert second["aria-sort"] == "descending"
    assert "fa-sort-down" in second["icon"]
    assert _query(second["href"])["o"] == ["owner"]


def test_without_a_sort_the_created_column_says_newest_first(portal_admin_client):
    make_token()

    headers = _page(portal_admin_client).headers

    assert headers["Created"]["aria-sort"] == "descending"
    assert "fa-sort-down" in headers["Created"]["icon"]
    assert _query(headers["Created"]["href"])["o"] == ["created"]
    assert headers["Owner"]["aria-sort"] == "none"


@pytest.mark.parametrize("bad", ["bogus", "-", "--owner", "owner,bogus", "owner,"])
def test_a_bad_sort_shows_the_default_order(portal_admin_client, bad):
    make_token()

    headers = _page(portal_admin_client, f"o={bad}").headers

    assert headers["Created"]["aria-sort"] == "descending"
    assert [label for label, h in headers.items() if h["aria-sort"] not in (None, "none")] == [
        "Created"
    ]


def test_a_sort_by_several_columns_shows_the_first(portal_admin_client):
    make_token()

    headers = _page(portal_admin_client, "o=-owner,code").headers

    assert headers["Owner"]["aria-sort"] == "descending"
    assert headers["Code"]["aria-sort"] == "none"


def test_sort_links_keep_the_filters_and_drop_the_page(portal_admin_client):
    make_token()

    headers = _page(portal_admin_client, "status=active&per_page=10&page=2&o=-expires").headers

    query = _query(headers["Expires"]["href"])
    assert query == {"status": ["active"], "per_page": ["10"], "o": ["expires"]}


def test_the_phone_sort_menu_offers_both_directions_of_each_column_and_keeps_the_filters(
    portal_admin_client,
):
    make_token()

    page = _page(portal_admin_client, "status=active&page=2&o=-owner")

    values = [value for value, _, _ in page.options]
    assert sorted(values) == sorted([*SORTABLE.values(), *(f"-{k}" for k in SORTABLE.values())])
    assert [(v, label) for v, selected, label in page.options if selected] == [
        ("-owner", "Owner, Z to A")
    ]
    assert page.hidden == [("status", "active")]


def test_sort_header_tag_escapes_its_label_and_marks_the_state():
    html = Template("{% load portal %}{% sort_header 'owner' label %}").render(
        Context({"sort": "-owner", "query_without_sort": "q=a%26b", "label": "<b>Owner</b>"})
    )

    assert html == (
        '<th scope="col" class="sortable" aria-sort="descending">'
        '<a class="sort-link" href="?q=a%26b&amp;o=owner">&lt;b&gt;Owner&lt;/b&gt;'
        '<i class="fa-solid fa-sort-down sort-icon" aria-hidden="true"></i></a></th>'
    )


def test_the_sort_words_cover_exactly_the_columns_the_filter_sorts_by():
    """The headers and the phone menu (SORT_CHOICES) and the filter's ``o`` must name the
    same columns: one the other lacks would be a dead link or an unreachable order."""
    from tokens.filters import TokenFilter
    from tokens.templatetags.portal import SORT_CHOICES

    assert set(SORT_CHOICES) == set(TokenFilter.base_filters["o"].param_map)
