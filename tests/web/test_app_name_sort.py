"""Sort by app: each token's copy of its app's name (AccessToken.app_name), kept right on
every write, and read in order from its index by the portal's list and Django admin."""

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import AppFactory, make_token
from tests.gateway.test_concurrency_pg import race
from tokens import services
from tokens.filters import TokenFilter
from tokens.models import AccessToken, App, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LIST_URL = reverse("tokens:list")
ADMIN_LIST = reverse("admin:tokens_accesstoken_changelist")
ADMIN_APP_COLUMN = "3"  # after the action checkbox: Code, Owner, App


@pytest.fixture
def three_apps():
    """Apps made in an order (their ids) that is not their names' order, two tokens each,
    made alternately, so that a sort by app that fell back to the id would show it."""
    apps = [AppFactory(name=name) for name in ("Zulu", "Alpha", "Mike")]
    for round_ in range(2):
        for app in apps:
            make_token(app=app, owner=f"{app.name} {round_}")
    return apps


def _by_name_then_id() -> list[int]:
    tokens = AccessToken.objects.select_related("app")
    return [t.pk for t in sorted(tokens, key=lambda t: (t.app.name, t.pk))]


def _portal_listed(client, sort: str) -> list[int]:
    response = client.get(LIST_URL, {"o": sort})
    assert response.status_code == 200
    return [token.pk for token in response.context["tokens"]]


def _admin_listed(client, sort: str) -> list[int]:
    response = client.get(ADMIN_LIST, {"o": sort})
    assert response.status_code == 200
    return [token.pk for token in response.context["cl"].result_list]


def _token_updates(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "tokens_accesstoken"')]


# --- Every way a token is made gets its app's name ------------------------------------------


def test_a_token_made_through_the_service_gets_its_apps_name():
    token, _ = make_token(app=AppFactory(name="Shop"))

    assert token.app_name == "Shop"
    token.refresh_from_db()
    assert token.app_name == "Shop"


def test_a_token_issued_by_oauth_gets_the_stored_name_not_a_stale_copy_of_the_app():
    app = AppFactory(name="Old name")
    App.objects.filter(pk=app.pk).update(name="New name")  # e.g. a cached client record

    issued = services.token_issue_for_client(app=app)

    assert issued.token.origin == TokenOrigin.OAUTH
    assert AccessToken.objects.get(pk=issued.token.pk).app_name == "New name"


def test_bulk_created_tokens_get_their_apps_names():
    shop, bank = AppFactory(name="Shop"), AppFactory(name="Bank")
    now = timezone.now()
    AccessToken.objects.bulk_create(
        AccessToken(
            digest=f"{n:064x}", prefix="tpk_x", suffix="x", app=app, owner="bulk", created_at=now
        )
        for n, app in enumerate([shop, bank, shop])
    )

    names = AccessToken.objects.filter(owner="bulk").values_list("app__name", "app_name")
    assert sorted(names) == [("Bank", "Bank"), ("Shop", "Shop"), ("Shop", "Shop")]


def test_the_migrations_backfill_fills_every_token_from_its_app(three_apps):
    from importlib import import_module

    backfill = import_module("tokens.migrations.0008_app_name_sort").BACKFILL_SQL
    AccessToken.objects.update(app_name=None)

    with connection.cursor() as cursor:
        cursor.execute(backfill)

    assert not AccessToken.objects.filter(app_name__isnull=True).exists()
    for token in AccessToken.objects.select_related("app"):
        assert token.app_name == token.app.name


# --- The portal's list ----------------------------------------------------------------------


def test_sort_by_app_reads_the_copy_with_the_id_as_tiebreak_in_both_directions():
    ascending = TokenFilter(data={"o": "app"}, queryset=AccessToken.objects.all()).qs
    descending = TokenFilter(data={"o": "-app"}, queryset=AccessToken.objects.all()).qs

    assert [str(f) for f in ascending.query.order_by] == ["app_name", "id"]
    assert [str(f) for f in descending.query.order_by] == ["-app_name", "-id"]


def test_sort_by_app_orders_by_app_name_then_id_both_ways(portal_admin_client, three_apps):
    expected = _by_name_then_id()

    assert _portal_listed(portal_admin_client, "app") == expected
    assert _portal_listed(portal_admin_client, "-app") == expected[::-1]


def test_renaming_an_app_renames_its_tokens_and_moves_them_in_the_list(
    portal_admin_client, three_apps
):
    zulu = three_apps[0]
    zulu.name = "Aardvark"
    zulu.save()

    assert set(zulu.tokens.values_list("app_name", flat=True)) == {"Aardvark"}
    listed = _portal_listed(portal_admin_client, "app")
    assert listed == _by_name_then_id()
    assert listed[:2] == sorted(zulu.tokens.values_list("pk", flat=True))


def test_a_rename_in_the_admin_app_form_renames_the_tokens(admin_client, three_apps):
    zulu = three_apps[0]
    response = admin_client.post(
        reverse("admin:tokens_app_change", args=[zulu.pk]),
        {
            "name": "Yankee",
            "is_active": "on",
            "subscription_set-TOTAL_FORMS": "0",
            "subscription_set-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert set(zulu.tokens.values_list("app_name", flat=True)) == {"Yankee"}


def test_saving_an_app_under_the_same_name_updates_no_token(three_apps):
    app = App.objects.get(name="Mike")
    app.is_active = False

    with CaptureQueriesContext(connection) as saved:
        app.save()

    assert _token_updates(saved.captured_queries) == []
    assert set(app.tokens.values_list("app_name", flat=True)) == {"Mike"}


def test_saving_other_fields_of_an_app_does_not_even_read_its_name(three_apps):
    with CaptureQueriesContext(connection) as saved:
        services.app_regenerate_secret(app=three_apps[2])

    reads = [q["sql"] for q in saved.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if '"tokens_app"' in sql]
    assert _token_updates(saved.captured_queries) == []


# --- Django admin ---------------------------------------------------------------------------


def test_the_admin_list_sorts_by_the_app_column_with_the_id_as_tiebreak(support_client, three_apps):
    expected = _by_name_then_id()

    assert _admin_listed(support_client, ADMIN_APP_COLUMN) == expected
    assert _admin_listed(support_client, f"-{ADMIN_APP_COLUMN}") == expected[::-1]
    response = support_client.get(ADMIN_LIST, {"o": ADMIN_APP_COLUMN})
    cl = response.context["cl"]
    assert [str(f) for f in cl.get_ordering(response.wsgi_request, cl.root_queryset)] == [
        "app_name",
        "pk",
    ]
    assert 'class="sortable column-app_display sorted ascending"' in response.text


# --- A rename racing a token's creation (PostgreSQL) ----------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("needs_postgresql")
def test_a_token_made_while_its_app_is_renamed_never_keeps_the_old_name():
    app = AppFactory(name="Before")
    token_written = threading.Event()
    tokens = []

    def create():
        # The token is written, then its transaction stays open while the rename starts.
        with transaction.atomic():
            token, _ = make_token(app=App.objects.get(pk=app.pk), owner="racing")
            tokens.append(token)
            token_written.set()
            threading.Event().wait(0.5)

    def rename():
        assert token_written.wait(timeout=30)
        renamed = App.objects.get(pk=app.pk)
        renamed.name = "After"
        renamed.save()

    results = race(create, rename)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert AccessToken.objects.get(pk=tokens[0].pk).app_name == "After"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("needs_postgresql")
def test_a_token_made_after_a_rename_began_waits_for_it_and_gets_the_new_name():
    app = AppFactory(name="Before")
    locked = threading.Event()

    def rename():
        with transaction.atomic():
            renamed = App.objects.get(pk=app.pk)
            renamed.name = "After"
            renamed.save()  # holds the app's row lock until the commit
            locked.set()
            threading.Event().wait(0.5)

    def create():
        assert locked.wait(timeout=30)
        return make_token(app=App.objects.get(pk=app.pk), owner="racing")[0]

    results = race(rename, create)

    assert not [r for r in results if isinstance(r, Exception)], results
    token = results[1]
    assert AccessToken.objects.get(pk=token.pk).app_name == "After"
