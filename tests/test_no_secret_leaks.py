"""A token's secret is shown once, on creation, and appears nowhere else.

Not in a page after creation, not in an audit entry, not in a log line (SQL included),
not in the database, a session, a cookie, a header or a URL.
"""

import contextlib
import json
import logging
import re

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.urls import reverse

from tests.factories import AppFactory, SubscriptionFactory, extra_fields_data, plans_data
from tokens import crypto
from tokens.models import AccessToken, AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


class _RawRecords(logging.Handler):
    """Keeps every record as emitted, before any handler's masking filter rewrites it."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        parts = [str(record.msg), repr(record.args)]
        with contextlib.suppress(Exception):  # a bad format string is still a record to scan
            parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        parts.append(repr(vars(record)))
        self.lines.append(" ".join(parts))


@pytest.fixture
def all_log_records():
    """Every log record at DEBUG, SQL with its parameters included."""
    handler = _RawRecords()
    # Loggers that do not propagate to the root (Django's) get the handler themselves,
    # first in line, so it sees each record before a masking filter touches it.
    names = ["", "django", "django.server", "django.request", "django.db.backends", "tokens"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.handlers.insert(0, handler)
        logger.setLevel(logging.DEBUG)
    force_debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True  # log every query, as DEBUG=True would
    try:
        yield handler
    finally:
        connection.force_debug_cursor = force_debug_cursor
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _hidden_part(secret: str) -> str:
    """What the masked code never shows: finding it means the secret leaked."""
    return secret[crypto.DISPLAY_PREFIX_LENGTH : -crypto.DISPLAY_SUFFIX_LENGTH]


def _assert_absent(secret: str, text: str, where: str) -> None:
    assert secret not in text, f"the secret is in {where}"
    assert _hidden_part(secret) not in text, f"the secret's hidden part is in {where}"


def _create_through_the_portal(client) -> tuple[AccessToken, str, object]:
    sub = SubscriptionFactory(app=AppFactory(name="Acme"))
    data = {
        "app": str(sub.app_id),
        "owner": "Ada",
        "nonce": "nonce-1",
        "use_subscriptions": "on",
    }
    data |= extra_fields_data([("Ticket", "SUP-1")]) | plans_data()
    response = client.post(reverse("tokens:create"), data)
    assert response.status_code == 200
    secret = re.search(r'id="new-token-secret"[^>]*value="([^"]+)"', response.content.decode())
    return AccessToken.objects.get(), secret.group(1), response


def _edit_and_revoke(client, token):
    edit = (
        {"owner": "Ada Lovelace", "version": str(token.version)}
        | extra_fields_data([("Ticket", "SUP-2")], initial=1)
        | plans_data([link.plan for link in token.api_links.all()])
    )
    assert client.post(reverse("tokens:edit", args=[token.public_id]), edit).status_code == 302
    revoke_url = reverse("tokens:revoke", args=[token.public_id])
    assert client.post(revoke_url, {"reason": "done"}).status_code == 302


def test_the_secret_is_on_the_created_page_once_and_on_no_page_after(portal_admin_client):
    token, secret, created = _create_through_the_portal(portal_admin_client)
    assert created.content.decode().count(secret) == 1

    pages = [
        token.get_absolute_url(),
        reverse("tokens:list"),
        reverse("tokens:list") + f"?q={token.prefix}&status=active",
        reverse("tokens:history", args=[token.public_id]),
        reverse("tokens:edit", args=[token.public_id]),
        reverse("tokens:revoke", args=[token.public_id]),
        reverse("tokens:create"),
    ]
    for url in pages:
        response = portal_admin_client.get(url)
        assert response.status_code == 200, url
        _assert_absent(secret, response.content.decode(), url)

    _edit_and_revoke(portal_admin_client, token)
    for url in pages[:4]:
        _assert_absent(secret, portal_admin_client.get(url).content.decode(), f"{url} (revoked)")


def test_a_replayed_creation_form_does_not_show_the_secret_again(portal_admin_client):
    token, secret, _ = _create_through_the_portal(portal_admin_client)
    sub_app = token.app_id
    data = {"app": str(sub_app), "owner": "Ada", "nonce": "nonce-1", "use_subscriptions": "on"}

    replay = portal_admin_client.post(
        reverse("tokens:create"), data | extra_fields_data() | plans_data(), follow=True
    )

    _assert_absent(secret, replay.content.decode(), "the replayed form's answer")
    assert AccessToken.objects.count() == 1


def test_no_audit_entry_holds_the_secret(portal_admin_client):
    token, secret, _ = _create_through_the_portal(portal_admin_client)
    _edit_and_revoke(portal_admin_client, token)

    events = list(AuditEvent.objects.filter(token=token).values())
    assert [e["action"] for e in sorted(events, key=lambda e: e["id"])] == [
        "created",
        "edited",
        "revoked",
    ]
    for event in events:
        _assert_absent(secret, json.dumps(event, default=str), f"audit event {event['action']}")


def test_no_log_line_holds_the_secret(portal_admin_client, all_log_records):
    token, secret, _ = _create_through_the_portal(portal_admin_client)
    _edit_and_revoke(portal_admin_client, token)
    portal_admin_client.get(token.get_absolute_url())
    portal_admin_client.get(reverse("tokens:history", args=[token.public_id]))

    assert any("INSERT INTO" in line for line in all_log_records.lines), "SQL was not logged"
    assert any(token.digest in line for line in all_log_records.lines)
    for line in all_log_records.lines:
        _assert_absent(secret, line, f"a log line: {line[:200]}")


def test_a_pasted_full_token_is_looked_up_by_digest_and_never_logged(
    portal_admin_client, all_log_records
):
    token, secret, _ = _create_through_the_portal(portal_admin_client)
    all_log_records.lines.clear()

    searched = portal_admin_client.post(reverse("tokens:list"), {"q": secret})
    response = portal_admin_client.get(searched["Location"])

    _assert_absent(secret, searched["Location"], "the search's redirect")
    _assert_absent(secret, response.content.decode(), "the search results")
    assert [t.pk for t in response.context["tokens"]] == [token.pk]
    sql = [line for line in all_log_records.lines if "SELECT" in line]
    assert any(token.digest in line for line in sql)
    for line in all_log_records.lines:
        _assert_absent(secret, line, f"a log line: {line[:200]}")


def test_the_database_holds_no_secret_anywhere(portal_admin_client):
    token, secret, _ = _create_through_the_portal(portal_admin_client)
    _edit_and_revoke(portal_admin_client, token)

    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                _assert_absent(secret, repr(row), f"table {table}")
    for session in Session.objects.all():
        _assert_absent(secret, json.dumps(session.get_decoded(), default=str), "a session")
    assert token.digest == crypto.digest(secret)


def test_the_secret_travels_in_no_url_header_or_cookie(portal_admin_client):
    _, secret, created = _create_through_the_portal(portal_admin_client)

    _assert_absent(secret, created.wsgi_request.get_full_path(), "the URL")
    _assert_absent(secret, repr(dict(created.items())), "the response headers")
    _assert_absent(secret, repr(created.cookies), "the cookies")
    assert "no-store" in created["Cache-Control"]


def test_a_secret_pasted_as_owner_or_extra_field_is_refused(portal_admin_client):
    token, secret, _ = _create_through_the_portal(portal_admin_client)
    edit_url = reverse("tokens:edit", args=[token.public_id])
    base = {"owner": "Ada", "version": str(token.version)} | plans_data(
        [link.plan for link in token.api_links.all()]
    )

    as_owner = portal_admin_client.post(
        edit_url, base | {"owner": f"leaked {secret}"} | extra_fields_data(initial=0)
    )
    as_value = portal_admin_client.post(edit_url, base | extra_fields_data([("Leaked", secret)]))

    for response in (as_owner, as_value):
        assert response.status_code == 400
        assert "looks like a token or client secret" in response.content.decode()
    for row in AccessToken.objects.values():
        _assert_absent(secret, repr(row), "the token row")


def test_a_secret_pasted_as_revoke_reason_is_kept_masked(portal_admin_client):
    token, secret, _ = _create_through_the_portal(portal_admin_client)

    response = portal_admin_client.post(
        reverse("tokens:revoke", args=[token.public_id]), {"reason": f"Leaked: {secret}"}
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revocation_reason.startswith("Leaked: tpk_")
    _assert_absent(secret, token.revocation_reason, "the stored reason")
    for event in AuditEvent.objects.values():
        _assert_absent(secret, json.dumps(event, default=str), "the audit")
    for url in (token.get_absolute_url(), reverse("tokens:history", args=[token.public_id])):
        _assert_absent(secret, portal_admin_client.get(url).content.decode(), url)
