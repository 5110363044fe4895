"""History: every token's audit trail — who, when, action, before → after."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal import timefmt
from tests.factories import (
    XSS,
    XSS_ESCAPED,
    UserFactory,
    api_with_plans,
    assert_escaped,
    make_token,
)
from tokens import services
from tokens.models import AuditAction, AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def history_url(token) -> str:
    return reverse("tokens:history", args=[token.public_id])


def _rows(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]
        for cells in (
            re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in body.split("</tr>")[:-1]
        )
    ]


def test_history_shows_who_did_what_and_when_newest_first(portal_admin_client, portal_admin):
    bob = UserFactory(username="bob")
    _, (free, gold) = api_with_plans("Free", "Gold", name="Payments")
    token, _ = make_token(owner="Old owner", plans=[free], actor=portal_admin)
    services.token_update(
        token=token,
        expected_version=1,
        owner="New owner",
        extra_fields=[["Ticket", "SUP-7"]],
        plans=[gold],
        actor=bob,
        remote_addr="198.51.100.1",
    )
    services.token_revoke(token=token, actor=portal_admin, reason="No longer needed")
    AuditEvent.objects.filter(action=AuditAction.CREATED).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    AuditEvent.objects.filter(action=AuditAction.EDITED).update(
        created_at=timezone.now() - timedelta(hours=1)
    )

    response = portal_admin_client.get(history_url(token))

    assert response.status_code == 200
    rows = _rows(response.content.decode())
    assert [(row[1], row[2]) for row in rows] == [
        ("admin-ada", "Revoked"),
        ("bob", "Edited"),
        ("admin-ada", "Created"),
    ]
    edited = rows[1]
    assert "Owner: Old owner → New owner" in edited[3]
    assert "Extra Fields: — → Ticket = SUP-7" in edited[3]
    assert "APIs and Plans: Payments v1: Free → Payments v1: Gold" in edited[3]
    assert edited[4] == "198.51.100.1"
    assert "Reason: — → No longer needed" in rows[0][3]
    event = token.events.get(action=AuditAction.EDITED)
    # Relative where people scan, the exact time beside it (shown on hover and focus).
    assert edited[0] == f"1 hour ago {timefmt.exact(event.created_at)}"


def test_history_shows_only_this_tokens_events(portal_admin_client):
    token, _ = make_token(owner="mine")
    make_token(owner="someone else's")

    html = portal_admin_client.get(history_url(token)).content.decode()

    assert len(_rows(html)) == 1
    assert "someone else" not in html


def test_actor_name_survives_the_users_deletion(portal_admin_client):
    gone = UserFactory(username="former-employee")
    token, _ = make_token()
    services.token_revoke(token=token, actor=gone)
    gone.delete()

    rows = _rows(portal_admin_client.get(history_url(token)).content.decode())

    assert rows[0][1] == "former-employee"


def test_history_is_paginated_and_a_bad_page_shows_the_first(portal_admin_client, portal_admin):
    token, _ = make_token()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            token=token,
            action=AuditAction.EDITED,
            actor_label="bulk",
            changes={"owner": [str(i), str(i + 1)]},
            token_version=i + 2,
            created_at=timezone.now() - timedelta(minutes=i + 1),
        )
        for i in range(59)
    )

    first = portal_admin_client.get(history_url(token))
    second = portal_admin_client.get(history_url(token) + "?page=2")
    out_of_range = portal_admin_client.get(history_url(token) + "?page=99")
    garbage = portal_admin_client.get(history_url(token) + "?page=abc")

    assert len(_rows(first.content.decode())) == 50
    assert len(_rows(second.content.decode())) == 10
    assert "Page 2 of 2" in second.content.decode()
    assert 'href="?page=1">Newer<' in second.content.decode()
    assert 'href="?page=2">Older<' in first.content.decode()
    for response in (out_of_range, garbage):
        assert response.status_code == 200
        assert "Page 1 of 2" in response.content.decode()


def test_history_query_count_does_not_grow_with_events_and_actors(portal_admin_client):
    token, _ = make_token(actor=UserFactory())
    portal_admin_client.get(history_url(token))
    with CaptureQueriesContext(connection) as few:
        portal_admin_client.get(history_url(token))

    for index in range(10):
        services.token_update(
            token=token,
            expected_version=token.version,
            owner=f"owner {index}",
            extra_fields=[],
            plans=[],
            actor=UserFactory(),
        )
    with CaptureQueriesContext(connection) as many:
        response = portal_admin_client.get(history_url(token))

    assert len(_rows(response.content.decode())) == 11
    assert len(many.captured_queries) == len(few.captured_queries)


def test_unknown_token_has_no_history(portal_admin_client):
    response = portal_admin_client.get("/tokens/00000000-0000-4000-8000-000000000000/history/")

    assert response.status_code == 404


def test_user_text_is_escaped_in_the_history(portal_admin_client, portal_admin, hostile_token):
    token, _ = hostile_token
    services.token_update(
        token=token,
        expected_version=token.version,
        owner=f"New {XSS}",
        extra_fields=[],
        plans=[],
        actor=portal_admin,
    )

    html = portal_admin_client.get(history_url(token)).content.decode()

    assert_escaped(html)
    assert f"<del>Owner {XSS_ESCAPED}</del> → <ins>New {XSS_ESCAPED}</ins>" in html
    assert f"Name {XSS_ESCAPED} = Value {XSS_ESCAPED}" in html
    assert f"API {XSS_ESCAPED} v1: Plan {XSS_ESCAPED}" in html
