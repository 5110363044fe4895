"""The admin's and the portal's lists take any query string: never a 500.

Bad filter values (superscript and other Unicode digits, ids beyond 64 bits, NUL, lone
surrogates) are ignored or answered 400; on SQLite a huge id overflowed the driver, and
PostgreSQL refuses NUL in a text literal. Run on both (DATABASE_URL=postgres://…).
"""

from urllib.parse import quote

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import AppFactory, PlanFactory, UserFactory, make_token
from tests.fuzzing import FUZZ_PAGES
from tokens.filters import TokenFilter
from tokens.models import AccessToken, App, AuditEvent, Plan

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

TOKENS = "admin:tokens_accesstoken_changelist"
User = get_user_model()

# The values the issue names, and their kin.
BAD_VALUES = [
    "²",
    "٣",
    "𝟗",
    "99999999999999999999999",
    "-99999999999999999999999",
    str(2**63),
    "\x00",
    "1\x00",
    "\ud800",
    "1\udfff",
    "1e309",
    " 1",
    "",
]


def query(params: list[tuple[str, str]]) -> str:
    # Lone surrogates as a client would send them: percent-escaped UTF-8 bytes.
    return "&".join(
        f"{quote(key, errors='surrogatepass')}={quote(value, errors='surrogatepass')}"
        for key, value in params
    )


def get(client, path, params):
    response = client.get(f"{path}?{query(params)}")
    assert response.status_code in (200, 302, 400), (params, response.status_code)
    if response.status_code == 302:  # admin's ?e=1 for a lookup it cannot use
        assert client.get(response["Location"]).status_code in (200, 400), params
    return response


def admin_parameters(model) -> list[str]:
    """The query-string names the model's admin list understands: each list filter's
    parameters, the fields they filter, and the list's own (search, sort, page)."""
    model_admin = admin.site._registry[model]
    names = {"q", "o", "p", "e", "_facets", "all"}
    for spec in model_admin.list_filter:
        if isinstance(spec, str | tuple):
            field = spec if isinstance(spec, str) else spec[0]
            names |= {field, f"{field}__exact", f"{field}__id__exact", f"{field}__isnull"}
            names |= {f"{field}__gte", f"{field}__lt", f"{field}__in"}
        else:
            names.add(spec.parameter_name)
    if model_admin.date_hierarchy:
        names |= {f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")}
    return sorted(names)


def portal_parameters() -> list[str]:
    names = {"q", "o", "page", "per_page"}
    for name, filter_ in TokenFilter.base_filters.items():
        widget = filter_.field_class.widget
        suffixes = getattr(widget, "suffixes", None)
        names |= {f"{name}_{s}" for s in suffixes} if suffixes else {name}
    return sorted(names)


ADMIN_LISTS = [
    (TOKENS, AccessToken),
    ("admin:tokens_auditevent_changelist", AuditEvent),
    ("admin:tokens_app_changelist", App),
    ("admin:tokens_plan_changelist", Plan),
    ("admin:auth_user_changelist", User),
]


@pytest.fixture
def rows(db):
    plan = PlanFactory(name="Gold")
    make_token(app=AppFactory(name="Shop"), plans=[plan])
    make_token(plans=[plan], revoked=True)


@pytest.fixture
def superuser_client(db):
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize("name", ["api", "plan", "origin", "app", "status"])
def test_the_values_the_issue_names_are_never_a_500_on_the_admin_token_list(
    support_client, rows, name, value
):
    get(support_client, reverse(TOKENS), [(name, value)])


@pytest.mark.parametrize("value", ["²", "٣", "99999999999999999999999", str(2**63)])
@pytest.mark.parametrize("name", ["api", "plan"])
def test_an_id_that_is_no_row_id_is_ignored_by_the_admin_api_and_plan_filters(
    support_client, rows, name, value
):
    unfiltered = support_client.get(reverse(TOKENS)).context["cl"].result_list
    response = get(support_client, reverse(TOKENS), [(name, value)])
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == list(unfiltered)


@pytest.mark.parametrize("value", ["\x00", "portal\x00", "\x00\ud800"])
def test_nul_in_a_filter_value_is_answered_400(support_client, rows, value):
    for name in ("origin", "origin__exact", "app", "status", "created_at__gte"):
        response = support_client.get(f"{reverse(TOKENS)}?{query([(name, value)])}")
        assert response.status_code == 400, name


@pytest.mark.parametrize("value", ["99999999999999999999999", "-99999999999999999999999"])
def test_an_id_beyond_64_bits_for_an_integer_column_is_answered_400(superuser_client, value):
    for path, name in (
        (reverse(TOKENS), "app"),
        (reverse(TOKENS), "app__id__in"),
        (reverse("admin:auth_user_changelist"), "groups"),
    ):
        assert superuser_client.get(path, {name: value}).status_code == 400, name


def test_a_day_beyond_the_calendar_in_the_date_hierarchy_is_answered_400(superuser_client):
    # Django's date hierarchy turns ValueError into its "?e=1" page, not OverflowError.
    url = reverse("admin:tokens_app_changelist")
    for day in ("2147483648", "99999999999999999999"):
        response = superuser_client.get(url, {"created_at__year": "2026", "created_at__day": day})
        assert response.status_code == 400


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize("name", ["api", "plan", "origin", "app", "status", "o", "page"])
def test_the_same_values_are_never_a_500_on_the_portal_list(portal_admin_client, rows, name, value):
    get(portal_admin_client, "/tokens/", [(name, value)])


values = st.one_of(
    st.sampled_from(BAD_VALUES),
    st.text(max_size=30),  # any character, lone surrogates included
    st.integers().map(str),
    st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=25),
)


@FUZZ_PAGES
@given(data=st.data())
def test_fuzzed_admin_list_query_strings_are_never_a_500(superuser_client, rows, data):
    path, model = data.draw(st.sampled_from(ADMIN_LISTS))
    names = admin_parameters(model)
    params = data.draw(st.lists(st.tuples(st.sampled_from(names), values), max_size=4))
    get(superuser_client, reverse(path), params)


@FUZZ_PAGES
@given(params=st.lists(st.tuples(st.sampled_from(portal_parameters()), values), max_size=4))
def test_fuzzed_portal_list_query_strings_are_never_a_500(portal_admin_client, rows, params):
    get(portal_admin_client, "/tokens/", params)
