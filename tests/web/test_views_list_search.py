"""The quick search posts, so a pasted full token never appears in a URL."""

import pytest

from tests.factories import AppFactory, make_token

pytestmark = pytest.mark.django_db


def test_pasted_full_token_is_posted_and_redirects_without_the_secret(portal_admin_client):
    token, secret = make_token(owner="Leaky Larry")
    make_token(owner="Someone Else")

    response = portal_admin_client.post("/tokens/?status=active&page=3", {"q": secret})

    assert response.status_code == 302
    location = response["Location"]
    assert secret not in location
    assert "status=active" in location and "page=" not in location
    page = portal_admin_client.get(location)
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert list(page.context["tokens"]) == [token]


def test_pasted_unknown_token_finds_nothing_and_is_not_echoed(portal_admin_client):
    make_token()
    _, unknown = make_token(app=AppFactory())
    from tokens.models import AccessToken

    AccessToken.objects.by_secret(unknown).delete()

    response = portal_admin_client.post("/tokens/", {"q": unknown})

    assert unknown not in response["Location"]
    page = portal_admin_client.get(response["Location"])
    assert list(page.context["tokens"]) == []
    assert unknown not in page.content.decode()


def test_plain_search_text_is_kept_in_the_shareable_address(portal_admin_client):
    wanted, _ = make_token(owner="Grace Hopper")
    make_token(owner="Alan Turing")

    response = portal_admin_client.post("/tokens/?o=owner", {"q": "  grace "})

    assert response.status_code == 302
    page = portal_admin_client.get(response["Location"])
    assert "q=grace" in response["Location"] and "o=owner" in response["Location"]
    assert list(page.context["tokens"]) == [wanted]


def test_empty_search_clears_the_search_but_keeps_filters(portal_admin_client):
    response = portal_admin_client.post("/tokens/?q=old&origin=oauth", {"q": ""})
    assert response["Location"] == "/tokens/?origin=oauth"


def test_search_post_needs_the_view_permission(client, plain_user):
    client.force_login(plain_user)
    assert client.post("/tokens/", {"q": "x"}).status_code == 403


def test_search_form_posts_with_a_csrf_token(portal_admin_client):
    html = portal_admin_client.get("/tokens/").content.decode()
    assert 'method="post" action="?" role="search"' in html
    assert "csrfmiddlewaretoken" in html


# --- What the quick search finds, on every backend --------------------------------------
#
# The search reads an index where there is one (pg_trgm on PostgreSQL, an FTS5 trigram
# table on SQLite) and checks each candidate with ``icontains`` again: the rows found
# must be exactly those a plain scan finds.


def _owners(queryset) -> list[str]:
    return sorted(token.owner for token in queryset)


@pytest.fixture
def owners():
    acme = AppFactory(name="Acme Checkout")
    for owner in [
        "ana.souza@acme.example #42424",
        "ana.souza@acme.example #4242",
        "Bruno SOUZA",
        "carla@globex.example",
        "100% sure_thing",
        "1000 surely",
        'quote "here"',
        "Zoë Ångström",
    ]:
        make_token(app=acme, owner=owner)
    make_token(app=AppFactory(name="Souza Bank"), owner="dora")
    make_token(owner="eve", extra_fields=[["Ticket", "SUP-2291"], ["Note", 'say "souza"']])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # owner, any case, anywhere; an app's name finds all its tokens; extra fields too
        (
            "souza",
            [
                "Bruno SOUZA",
                "ana.souza@acme.example #42424",
                "ana.souza@acme.example #4242",
                "dora",
                "eve",
            ],
        ),
        ("SOUZA@ACME.EXAMPLE #42424", ["ana.souza@acme.example #42424"]),
        ("acme.example #4242", ["ana.souza@acme.example #42424", "ana.souza@acme.example #4242"]),
        ("sup-2291", ["eve"]),
        ('"souza"', ["eve"]),
        ('quote "here"', ['quote "here"']),
        # LIKE's wildcards are plain characters
        ("100%", ["100% sure_thing"]),
        ("e_t", ["100% sure_thing"]),
        ("%", ["100% sure_thing"]),
        # shorter than a trigram
        ("zo", ["Zoë Ångström"]),
        ("Ångström", ["Zoë Ångström"]),
        ("nobody here", []),
        # the stored JSON's own brackets: every token (no extra fields is "[]")
        (
            "[",
            [
                "ana.souza@acme.example #42424",
                "ana.souza@acme.example #4242",
                "Bruno SOUZA",
                "carla@globex.example",
                "100% sure_thing",
                "1000 surely",
                'quote "here"',
                "Zoë Ångström",
                "dora",
                "eve",
            ],
        ),
    ],
)
def test_search_finds_the_same_rows_as_a_plain_scan(owners, query, expected):
    from tokens.models import AccessToken

    assert _owners(AccessToken.objects.search(query)) == sorted(expected)


def test_a_common_text_is_searched_without_the_index_and_finds_the_same_rows(owners, monkeypatch):
    from tokens import search
    from tokens.models import AccessToken

    rare = _owners(AccessToken.objects.search("ana.souza"))
    monkeypatch.setattr(search, "SEARCH_CANDIDATES_LIMIT", 1)

    assert _owners(AccessToken.objects.search("ana.souza")) == rare
    assert rare == sorted(["ana.souza@acme.example #42424", "ana.souza@acme.example #4242"])


def test_the_search_follows_edits_of_the_owner_and_extra_fields():
    from tokens.models import AccessToken

    token, _ = make_token(owner="Old Owner Name")
    AccessToken.objects.filter(pk=token.pk).update(
        owner="Brand New Owner", extra_fields=[["Ticket", "OPS-777"]]
    )

    assert list(AccessToken.objects.search("old owner")) == []
    assert list(AccessToken.objects.search("new owner")) == [token]
    assert list(AccessToken.objects.search("ops-777")) == [token]
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=token.created_at)
    assert list(AccessToken.objects.search("new owner")) == [token]


def test_a_code_prefix_search_is_case_sensitive_as_codes_are():
    from tokens.models import AccessToken

    token, secret = make_token()
    code = secret[:9]
    swapped = code[:4] + code[4:].swapcase()

    assert list(AccessToken.objects.search(code)) == [token]
    if swapped != code:
        assert list(AccessToken.objects.search(swapped)) == []


def test_on_sqlite_the_trigram_index_and_its_triggers_exist():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL searches through pg_trgm")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'tokens_accesstoken_search%%' "
            "AND type IN ('table', 'trigger') ORDER BY name"
        )
        names = {name for (name,) in cursor.fetchall()}
    # A migration that rebuilds tokens_accesstoken drops its triggers: create them again.
    assert {
        "tokens_accesstoken_search",
        "tokens_accesstoken_search_insert",
        "tokens_accesstoken_search_update",
        "tokens_accesstoken_search_delete",
    } <= names


def test_on_sqlite_a_rare_text_is_read_through_the_trigram_index(owners):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tokens.models import AccessToken

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL searches through pg_trgm")
    with CaptureQueriesContext(connection) as ctx:
        found = _owners(AccessToken.objects.search("globex.example"))

    assert found == ["carla@globex.example"]
    assert any("MATCH" in query["sql"] for query in ctx.captured_queries)


def test_tokens_loaded_in_bulk_with_the_index_paused_are_found():
    from django.db import connection, transaction

    from tokens.models import AccessToken
    from tokens.search import search_index_paused

    make_token(owner="before the load")
    with transaction.atomic(), search_index_paused(connection):
        loaded, _ = make_token(owner="loaded in bulk")

    assert list(AccessToken.objects.search("loaded in")) == [loaded]
    AccessToken.objects.filter(pk=loaded.pk).update(owner="edited after")
    assert list(AccessToken.objects.search("edited after")) == [loaded]
    assert list(AccessToken.objects.search("loaded in")) == []


def test_a_search_counts_exactly_only_up_to_its_own_smaller_limit(portal_admin_client, monkeypatch):
    from django.db import connection

    from tokens.views import listing

    monkeypatch.setattr(listing, "SEARCH_EXACT_COUNT_LIMIT", 2)
    app = AppFactory()
    for number in range(4):
        make_token(app=app, owner=f"common owner {number}")

    searched = portal_admin_client.get("/tokens/", {"q": "common owner"})
    listed = portal_admin_client.get("/tokens/")

    paginator = searched.context["page_obj"].paginator
    assert paginator.count_is_exact is False
    assert len(searched.context["tokens"]) == 4
    if connection.vendor == "sqlite":
        assert "more than 3 tokens" in searched.content.decode()
    assert listed.context["page_obj"].paginator.count_is_exact is True
    assert "4 tokens" in listed.content.decode()
