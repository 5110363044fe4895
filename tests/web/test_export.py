"""Export CSV (`GET /tokens/export.csv?<the list's query string>`): every matching token,
all pages, streamed, never a secret, safe in a spreadsheet."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal import timefmt
from tests.factories import AppFactory, api_with_plans, make_token, user_with_perms
from tokens import export
from tokens.models import AccessToken

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

EXPORT_URL = reverse("tokens:export")


def _get(client, query=""):
    return client.get(f"{EXPORT_URL}?{query}" if query else EXPORT_URL)


def _body(response) -> bytes:
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content)


def _rows(response) -> list[dict[str, str]]:
    body = _body(response)
    assert body.startswith("\ufeff".encode())  # the BOM, for Excel
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    header, *rows = list(reader)
    assert header == export.HEADER
    return [dict(zip(header, row, strict=True)) for row in rows]


def _owners(response) -> set[str]:
    return {row["Owner"] for row in _rows(response)}


def _export_events(caplog) -> list[dict]:
    events = (getattr(record, "security", None) or {} for record in caplog.records)
    return [event for event in events if event.get("event") == "tokens_exported"]


# --- The file ----------------------------------------------------------------------------


def test_export_is_a_csv_attachment_named_with_the_utc_time_and_never_stored(
    portal_admin_client,
):
    response = _get(portal_admin_client)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="access-tokens-\d{8}T\d{6}Z\.csv"',
        response["Content-Disposition"],
    )
    assert "no-store" in response["Cache-Control"]


def test_no_matching_token_exports_the_header_only(portal_admin_client):
    make_token(owner="someone")

    assert _rows(_get(portal_admin_client, "q=nobody-like-this")) == []


def test_each_row_has_the_list_columns_and_more_never_the_secret_or_digest(
    portal_admin_client,
):
    pay, (gold,) = api_with_plans("Gold", name="Payments")
    orders, (free,) = api_with_plans("Free", name="Orders")
    expires = timezone.now() + timedelta(days=40)
    token, secret = make_token(
        app=AppFactory(name="Acme"),
        owner="Ada",
        plans=[gold, free],
        extra_fields=[["team", "core"], ["ticket", "T-1"]],
        expires_at=expires,
    )
    revoked, revoked_secret = make_token(owner="Bob", revoked=True)
    AccessToken.objects.filter(pk=revoked.pk).update(
        leaked_at=timezone.now(), leak_url="https://example.test/leak"
    )

    response = _get(portal_admin_client, "o=owner")
    body = _body(response).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body, newline="")))

    for text in (secret, token.digest, revoked_secret, revoked.digest):
        assert text not in body
    ada, bob = rows
    assert ada["Code"] == token.masked_code
    assert ada["App"] == "Acme"
    assert ada["Status"] == "Active"
    assert ada["Origin"] == "Portal"
    assert ada["APIs"] == "Orders: Free; Payments: Gold"
    # The screens' format (portal.timefmt), to the second, with the zone.
    assert ada["Expires"] == expires.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", ada["Created"])
    assert ada["Last used"] == ada["Revoked at"] == ada["Leaked at"] == ""
    assert ada["Extra fields"] == "team=core; ticket=T-1"
    assert bob["Status"] == "Revoked"
    assert bob["Revoked at"] == timefmt.exact(AccessToken.objects.get(pk=revoked.pk).revoked_at)
    assert bob["Revoked by"] == "system"
    assert bob["Revocation reason"] == "test"
    assert bob["Leaked at"].endswith(" UTC")
    assert bob["Leak URL"] == "https://example.test/leak"


def test_times_are_written_as_on_the_screens(portal_admin_client):
    token, _ = make_token(owner="Ada", expires_at=timezone.now() + timedelta(days=3))
    token.refresh_from_db()
    list_page = portal_admin_client.get(reverse("tokens:list")).content.decode()

    (row,) = _rows(_get(portal_admin_client))

    assert row["Created"] == timefmt.exact(token.created_at)
    assert row["Expires"] == timefmt.exact(token.expires_at)
    # The list shows the same text as the exact time of its cells.
    assert f"{row['Created']}</span></time>" in list_page
    assert f"{row['Expires']}</span></time>" in list_page


def test_the_export_works_with_query_logging_on_as_in_debug_mode(portal_admin_client):
    """DEBUG=1 (the README's run command) logs each query: Django then formats the SQL
    with its parameters, which a literal % in the SQL text (a strftime format) breaks."""
    token, _ = make_token(owner="Ada", expires_at=timezone.now() + timedelta(days=3))
    token.refresh_from_db()

    with CaptureQueriesContext(connection):
        response = _get(portal_admin_client)
        (row,) = _rows(response)

    assert row["Created"] == timefmt.exact(token.created_at)
    assert row["Expires"] == timefmt.exact(token.expires_at)


@override_settings(TIME_ZONE="Europe/Paris")
def test_times_are_in_the_zone_the_portal_shows(portal_admin_client):
    make_token(owner="Winter", expires_at=datetime(2031, 1, 15, 12, 0, 5, tzinfo=UTC))
    make_token(owner="Summer", expires_at=datetime(2031, 7, 15, 12, 0, 5, tzinfo=UTC))

    rows = {row["Owner"]: row for row in _rows(_get(portal_admin_client))}

    assert rows["Winter"]["Expires"] == "2031-01-15 13:00:05 CET"
    assert rows["Summer"]["Expires"] == "2031-07-15 14:00:05 CEST"
    assert rows["Summer"]["Last used"] == ""


@pytest.mark.parametrize(
    "text",
    [
        'comma, "quotes" and\nnewlines\r\n',
        "non-ASCII: Zoë Ünal 東京 🚀",
        "plain text",
    ],
)
def test_awkward_text_round_trips_through_csv_reader(portal_admin_client, text):
    make_token(owner=text, extra_fields=[[text, text]])

    (row,) = _rows(_get(portal_admin_client))

    assert row["Owner"] == text
    assert row["Extra fields"] == f"{text}={text}"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_that_would_start_a_formula_is_neutralised(portal_admin_client, start):
    formula = f'{start}HYPERLINK("http://evil.test","x")'
    make_token(owner=formula, extra_fields=[[formula, "1+1"]])

    (row,) = _rows(_get(portal_admin_client))

    assert row["Owner"] == "'" + formula
    assert row["Extra fields"] == "'" + f"{formula}=1+1"


def test_neutralise_leaves_other_text_alone():
    assert export.neutralise("Ada = 1") == "Ada = 1"
    assert export.neutralise("") == ""
    assert export.neutralise(None) == ""
    assert export.neutralise("-1") == "'-1"


# --- Which tokens: the list's filter -------------------------------------------------------


def test_every_page_is_exported_not_just_the_first(portal_admin_client):
    app = AppFactory()
    AccessToken.objects.bulk_create(
        AccessToken(
            app=app, owner=f"owner {n:03}", prefix="tpk_bulk", suffix=f"{n:04}", digest=f"{n:064}"
        )
        for n in range(130)
    )

    rows = _rows(_get(portal_admin_client, "per_page=10&page=3&o=owner"))

    assert [row["Owner"] for row in rows] == [f"owner {n:03}" for n in range(130)]


@override_settings()
def test_export_streams_in_chunks(portal_admin_client, monkeypatch):
    monkeypatch.setattr(export, "CHUNK_SIZE", 8)
    pay, (gold,) = api_with_plans("Gold", name="Payments")
    for n in range(20):
        make_token(owner=f"o{n:02}", plans=[gold])

    response = _get(portal_admin_client, "o=owner")
    chunks = list(response.streaming_content)

    assert len(chunks) > 2
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig"), newline="")))
    assert [row["Owner"] for row in rows] == [f"o{n:02}" for n in range(20)]
    assert {row["APIs"] for row in rows} == {"Payments: Gold"}


def test_the_sort_is_honoured(portal_admin_client):
    for owner in ("b", "c", "a"):
        make_token(owner=owner)

    assert [r["Owner"] for r in _rows(_get(portal_admin_client, "o=-owner"))] == ["c", "b", "a"]
    assert [r["Owner"] for r in _rows(_get(portal_admin_client, "o=owner"))] == ["a", "b", "c"]


def test_filters_of_the_list_apply(portal_admin_client):
    acme, other = AppFactory(name="Acme"), AppFactory(name="Other")
    pay, (gold,) = api_with_plans("Gold", name="Payments")
    make_token(app=acme, owner="acme-active", plans=[gold])
    make_token(app=acme, owner="acme-revoked", revoked=True)
    make_token(app=other, owner="other-active")

    assert _owners(_get(portal_admin_client, f"app={acme.pk}")) == {"acme-active", "acme-revoked"}
    assert _owners(_get(portal_admin_client, "status=revoked")) == {"acme-revoked"}
    assert _owners(_get(portal_admin_client, f"api={pay.pk}")) == {"acme-active"}
    assert _owners(_get(portal_admin_client, "q=other")) == {"other-active"}
    assert _owners(_get(portal_admin_client, f"app={acme.pk}&status=active")) == {"acme-active"}


def test_a_pasted_full_token_finds_its_token_and_is_never_logged(portal_admin_client, caplog):
    token, secret = make_token(owner="found")
    make_token(owner="not found")

    with caplog.at_level("INFO"):
        rows = _rows(_get(portal_admin_client, f"q={secret}"))

    assert [row["Owner"] for row in rows] == ["found"]
    assert secret not in caplog.text
    (record,) = _export_events(caplog)
    assert record["filter"] == f"q={token.masked_code}".replace("…", "%E2%80%A6")


def test_export_is_logged_with_its_filter(portal_admin_client, caplog):
    with caplog.at_level("INFO"):
        _body(_get(portal_admin_client, "status=active&page=2"))

    (record,) = _export_events(caplog)
    assert record["filter"] == "status=active"
    assert record["actor"] == "admin-ada"


def test_an_unreadable_filter_is_refused_with_a_clear_400(portal_admin_client):
    make_token()

    response = _get(portal_admin_client, "created_after=not-a-date&status=sideways")

    assert response.status_code == 400
    text = response.content.decode()
    assert text.startswith("Nothing exported: these filters could not be read:")
    assert "Created between" in text and "Status" in text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "q",
                "api",
                "app",
                "status",
                "origin",
                "plan",
                "created_after",
                "expires_before",
                "expiring",
                "last_used",
                "o",
                "page",
                "per_page",
                "zzz",
            ]
        ),
        st.text(max_size=30),
        max_size=5,
    )
)
def test_any_query_string_answers_a_file_or_a_400_never_a_500(portal_admin_client, params):
    response = portal_admin_client.get(EXPORT_URL, params)

    assert response.status_code in (200, 400)
    if response.status_code == 200:
        _rows(response)


# --- Who may -------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client):
    response = _get(client)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_without_the_view_permission_403(plain_client):
    assert _get(plain_client).status_code == 403


def test_support_staff_may_export(support_client):
    make_token(owner="seen")

    assert _owners(_get(support_client)) == {"seen"}


def test_the_view_permission_alone_is_enough(client):
    client.force_login(user_with_perms("tokens.view_accesstoken"))

    assert _get(client).status_code == 200


# --- The button -----------------------------------------------------------------------------


def test_the_list_links_export_csv_with_its_query_string_minus_page(portal_admin_client):
    html = portal_admin_client.get(reverse("tokens:list") + "?status=active&page=2&o=owner")

    links = re.findall(
        r'<a [^>]*href="([^"]*)"[^>]*>(?:<i [^>]*></i>)?Export CSV</a>', html.content.decode()
    )
    assert links == [f"{EXPORT_URL}?status=active&amp;o=owner"]
