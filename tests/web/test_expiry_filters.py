"""The list's quick filter **Expiring soon** and Advanced filter **Last used**, on the list,
with the other filters, and in what Export CSV exports."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import AppFactory, make_token
from tokens.models import AccessToken

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LIST_URL = reverse("tokens:list")
EXPORT_URL = reverse("tokens:export")


def _listed(client, query) -> list[str]:
    response = client.get(f"{LIST_URL}?{query}")
    assert response.status_code == 200
    assert not response.context["filter"].form.errors
    return sorted(token.owner for token in response.context["tokens"])


def _exported(client, query) -> list[str]:
    response = client.get(f"{EXPORT_URL}?{query}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return sorted(row["Owner"] for row in csv.DictReader(io.StringIO(body, newline="")))


def _both(client, query) -> list[str]:
    listed = _listed(client, query)
    assert _exported(client, query) == listed
    return listed


def _set(token, **fields):
    AccessToken.objects.filter(pk=token.pk).update(**fields)


@pytest.fixture
def expiry_world(db):
    now = timezone.now()
    acme = AppFactory(name="Acme")
    tokens = {
        "in-1-day": make_token(owner="in-1-day", app=acme, expires_at=now + timedelta(days=1)),
        "in-6-days": make_token(owner="in-6-days", expires_at=now + timedelta(days=6, hours=23)),
        "in-8-days": make_token(owner="in-8-days", expires_at=now + timedelta(days=8)),
        "never-expires": make_token(owner="never-expires"),
        "expired": make_token(owner="expired", expired=True),
        "revoked-soon": make_token(
            owner="revoked-soon", expires_at=now + timedelta(days=2), revoked=True
        ),
    }
    return acme, {name: token for name, (token, _) in tokens.items()}


def test_expiring_soon_lists_active_tokens_expiring_within_7_days(
    portal_admin_client, expiry_world
):
    assert _both(portal_admin_client, "expiring=soon") == ["in-1-day", "in-6-days"]


def test_expiring_soon_combines_with_other_filters(portal_admin_client, expiry_world):
    acme, _ = expiry_world

    assert _both(portal_admin_client, f"expiring=soon&app={acme.pk}") == ["in-1-day"]
    assert _both(portal_admin_client, "expiring=soon&q=6-days") == ["in-6-days"]
    assert _both(portal_admin_client, "expiring=soon&status=revoked") == []


def test_expiring_soon_is_a_toggle_shown_pressed_when_on(portal_admin_client, expiry_world):
    def toggle(query):
        html = portal_admin_client.get(f"{LIST_URL}?{query}").content.decode()
        (link,) = re.findall(r"<a [^>]*>(?:<i [^>]*></i>)?Expiring soon</a>", html)
        return link

    off = toggle("status=active&page=2")
    assert 'aria-pressed="false"' in off
    assert 'href="?status=active&amp;expiring=soon"' in off

    on = toggle("status=active&expiring=soon")
    assert 'aria-pressed="true"' in on and " active" in on
    assert 'href="?status=active"' in on


def test_the_advanced_filter_keeps_expiring_soon(portal_admin_client, expiry_world):
    html = portal_admin_client.get(f"{LIST_URL}?expiring=soon").content.decode()

    form = html[html.index('aria-label="Advanced filter"') :].split("</form>")[0]
    assert '<input type="hidden" name="expiring" value="soon">' in form


@pytest.fixture
def usage_world(db):
    now = timezone.now()
    made = {}
    for owner, last_used in [
        ("never-used", None),
        ("used-today", now - timedelta(hours=1)),
        ("used-40-days-ago", now - timedelta(days=40)),
        ("used-100-days-ago", now - timedelta(days=100)),
    ]:
        token, _ = make_token(owner=owner)
        _set(token, last_used_at=last_used)
        made[owner] = token
    return made


@pytest.mark.parametrize(
    ("choice", "owners"),
    [
        ("never", ["never-used"]),
        ("30", ["never-used", "used-100-days-ago", "used-40-days-ago"]),
        ("90", ["never-used", "used-100-days-ago"]),
        ("", ["never-used", "used-100-days-ago", "used-40-days-ago", "used-today"]),
    ],
)
def test_last_used_choices(portal_admin_client, usage_world, choice, owners):
    assert _both(portal_admin_client, f"last_used={choice}") == owners


def test_last_used_combines_with_status_and_search(portal_admin_client, usage_world):
    from tokens import services

    services.token_revoke(
        token=usage_world["used-100-days-ago"],
        actor=None,
        reason="idle",
        channel=services.RevokeChannel.INCIDENT,
    )

    assert _both(portal_admin_client, "last_used=90&status=active") == ["never-used"]
    assert _both(portal_admin_client, "last_used=30&q=used-40") == ["used-40-days-ago"]


def test_the_advanced_filter_offers_last_used_with_its_labels(portal_admin_client):
    html = portal_admin_client.get(f"{LIST_URL}?last_used=90").content.decode()

    assert '<label for="id_last_used" class="form-label">Last used</label>' in html
    select = html[html.index('<select name="last_used"') :].split("</select>")[0]
    assert re.findall(r">([^<]+)</option>", select) == [
        "Any",
        "Never used",
        "Not used in 30 days",
        "Not used in 90 days",
    ]
    assert '<option value="90" selected>' in select
    assert '<details class="mt-3" open>' in html


def test_an_unknown_choice_is_ignored_on_the_list_and_refused_by_the_export(
    portal_admin_client, usage_world
):
    response = portal_admin_client.get(f"{LIST_URL}?last_used=7&expiring=later")

    assert response.status_code == 200
    assert set(response.context["filter"].form.errors) == {"last_used", "expiring"}
    assert "Some filters could not be read" in response.content.decode()
    assert portal_admin_client.get(f"{EXPORT_URL}?last_used=7").status_code == 400


@pytest.mark.parametrize("direction", ["", "-"])
def test_the_last_used_column_sorts_never_used_tokens_together_ties_by_id(
    portal_admin_client, usage_world, direction
):
    response = portal_admin_client.get(f"{LIST_URL}?o={direction}last_used")
    owners = [token.owner for token in response.context["tokens"]]

    used = ["used-100-days-ago", "used-40-days-ago", "used-today"]
    assert [o for o in owners if o != "never-used"] == (used if not direction else used[::-1])
    # NULLs sort as the database puts them: last ascending on PostgreSQL, first on SQLite;
    # either way at one end, never in between.
    assert owners.index("never-used") in (0, len(owners) - 1)
    assert _exported_order(portal_admin_client, f"o={direction}last_used") == owners


def _exported_order(client, query):
    response = client.get(f"{EXPORT_URL}?{query}")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return [row["Owner"] for row in csv.DictReader(io.StringIO(body, newline=""))]
