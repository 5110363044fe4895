"""ROTATE's screens: the button on the Overview, the confirm page with its choice of how
long the old token keeps working, the new secret shown once, the two Overviews linked."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal import timefmt
from tests.factories import (
    AppFactory,
    PlanFactory,
    assert_escaped,
    make_token,
    user_with_perms,
)
from tokens import crypto, services
from tokens.gateway import cache
from tokens.gateway.cache import CachePurgeFailed
from tokens.models import AccessToken, AuditAction, TokenOrigin, TokenRotation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

CHOICES = {"none": "None (stops at once)", "1h": "1 hour", "24h": "24 hours", "7d": "7 days"}
GRACES = {
    "none": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def rotate_url(token) -> str:
    return reverse("tokens:rotate", args=[token.public_id])


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _rows():
    return list(AccessToken.objects.order_by("pk").values())


@pytest.fixture
def old():
    plan = PlanFactory(name="Gold", api__name="Payments", api__base_path="/pay")
    return make_token(
        app=AppFactory(name="Shop"),
        owner="Ada Lovelace",
        plans=[plan],
        extra_fields=[["Ticket", "T-1"]],
    )


def rotate_button(html: str) -> bool:
    return re.search(r'<a class="btn[^"]*" href="[^"]*/rotate/">ROTATE</a>', html) is not None


# --- the confirm page -----------------------------------------------------------------------


def test_the_rotate_url_is_the_contracts(old):
    assert rotate_url(old[0]) == f"/tokens/{old[0].public_id}/rotate/"


def test_the_confirm_page_asks_how_long_the_old_token_keeps_working(portal_admin_client, old):
    token, _ = old

    response = portal_admin_client.get(rotate_url(token))

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r"<legend[^>]*>\s*Old token keeps working for", html)
    for value, label in CHOICES.items():
        match = re.search(
            rf'<input type="radio"[^>]*name="grace" value="{value}"[^>]*id="(id_grace_\d)"', html
        )
        assert match, value
        assert re.search(rf'<label for="{match[1]}"[^>]*>\s*{re.escape(label)}\s*</label>', html)
    assert re.search(r'<form method="post"', html)
    assert 'name="csrfmiddlewaretoken"' in html
    assert re.search(r'<button type="submit"[^>]*>CONFIRM</button>', html)
    assert token.masked_code in html and "Ada Lovelace" in html


def test_opening_the_confirm_page_rotates_nothing(portal_admin_client, old):
    before = _rows()

    portal_admin_client.get(rotate_url(old[0]) + "?grace=none")

    assert _rows() == before
    assert not TokenRotation.objects.exists()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("oauth", "issued by the OAuth flow"),
        ("expired", "This token is expired; only an active token can be rotated."),
        ("revoked", "This token is revoked; only an active token can be rotated."),
    ],
)
def test_a_token_that_cannot_be_rotated_gets_a_clear_page_without_a_form(
    portal_admin_client, kind, message
):
    token, _ = make_token(
        origin=TokenOrigin.OAUTH if kind == "oauth" else TokenOrigin.PORTAL,
        expired=kind == "expired",
        revoked=kind == "revoked",
    )

    response = portal_admin_client.get(rotate_url(token))

    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert not re.search(r'<form method="post"(?! action="/accounts/logout/")', html)
    assert "CONFIRM" not in html
    assert f'href="{token.get_absolute_url()}"' in html


def test_the_page_of_a_rotated_token_names_and_links_its_replacement(portal_admin_client, old):
    token, _ = old
    issued = services.token_rotate(token=token, grace=timedelta(hours=1), actor=None)

    html = portal_admin_client.get(rotate_url(token)).content.decode()

    assert f"This token was already rotated: it is replaced by {issued.token.masked_code}." in (
        html.replace("&hellip;", "…")
    )
    assert f'href="{issued.token.get_absolute_url()}"' in html
    assert "CONFIRM" not in html


# --- confirming -----------------------------------------------------------------------------


@pytest.mark.parametrize("grace", sorted(CHOICES))
def test_confirming_shows_the_new_secret_once_and_links_both_overviews(
    portal_admin_client, portal_admin, old, grace
):
    token, _ = old
    before = timezone.now()

    response = portal_admin_client.post(
        rotate_url(token), {"grace": grace}, REMOTE_ADDR="192.0.2.10"
    )

    assert response.status_code == 200
    html = response.content.decode()
    record = TokenRotation.objects.get(old=token)
    new = record.new
    [secret] = re.findall(r'id="new-token-secret"[^>]*value="([^"]+)"', html)
    assert crypto.digest(secret) == new.digest
    assert html.count(secret) == 1
    assert "no-store" in response["Cache-Control"]  # never kept, nor shown again on "Back"
    assert 'data-copy-target="new-token-secret"' in html
    assert f'href="{new.get_absolute_url()}"' in html
    assert f'href="{token.get_absolute_url()}"' in html
    assert record.old_stops_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert before + GRACES[grace] <= record.old_stops_at <= timezone.now() + GRACES[grace]
    token.refresh_from_db()
    if grace == "none":
        assert token.status == "revoked" and token.revocation_reason == "rotated"
        assert "stopped at" in html
    else:
        assert token.status == "active" and token.expires_at == record.old_stops_at
        assert "keeps working until" in html
    assert (new.owner, new.app, new.extra_fields) == (
        "Ada Lovelace",
        token.app,
        [["Ticket", "T-1"]],
    )
    event = token.events.get(action=AuditAction.ROTATED)
    assert (event.actor, event.remote_addr) == (portal_admin, "192.0.2.10")


def test_a_reloaded_confirmation_never_shows_a_secret_again_nor_makes_another_token(
    portal_admin_client, old
):
    token, _ = old
    first = portal_admin_client.post(rotate_url(token), {"grace": "1h"})
    [secret] = re.findall(r'id="new-token-secret"[^>]*value="([^"]+)"', first.content.decode())
    count = AccessToken.objects.count()

    again = portal_admin_client.post(rotate_url(token), {"grace": "1h"})

    assert again.status_code == 302 and again.url == token.get_absolute_url()
    new = TokenRotation.objects.get(old=token).new
    assert f"This token was already rotated: it is replaced by {new.masked_code}." in _messages(
        again
    )
    assert AccessToken.objects.count() == count
    for page in (token.get_absolute_url(), new.get_absolute_url(), rotate_url(token)):
        assert secret not in portal_admin_client.get(page).content.decode()


@pytest.mark.parametrize("data", [{}, {"grace": ""}, {"grace": "forever"}, {"grace": "-1"}])
def test_a_missing_or_unknown_period_is_refused_with_a_clear_error(portal_admin_client, old, data):
    before = _rows()

    response = portal_admin_client.post(rotate_url(old[0]), data)

    assert response.status_code == 400
    html = response.content.decode()
    assert (
        "Choose how long the old token keeps working." in html
        or "Choose one of the periods offered." in html
    )
    assert _rows() == before


def test_confirming_for_a_token_that_cannot_be_rotated_changes_nothing(portal_admin_client):
    token, _ = make_token(revoked=True)
    before = _rows()

    response = portal_admin_client.post(rotate_url(token), {"grace": "none"})

    assert response.status_code == 302 and response.url == token.get_absolute_url()
    assert "This token is revoked; only an active token can be rotated." in _messages(response)
    assert _rows() == before


def test_without_add_or_revoke_permission_rotating_is_forbidden(client, old):
    token, _ = old
    for perms in [
        ("tokens.view_accesstoken", "tokens.add_accesstoken"),
        ("tokens.view_accesstoken", "tokens.revoke_accesstoken"),
    ]:
        client.force_login(user_with_perms(*perms))
        before = _rows()

        assert client.get(rotate_url(token)).status_code == 403
        assert client.post(rotate_url(token), {"grace": "none"}).status_code == 403
        assert _rows() == before


def test_a_cross_site_confirmation_without_the_csrf_token_is_refused(portal_admin, old):
    client = Client(enforce_csrf_checks=True)
    client.force_login(portal_admin)
    before = _rows()

    response = client.post(rotate_url(old[0]), {"grace": "none"})

    assert response.status_code == 403
    assert _rows() == before


def test_the_page_escapes_what_the_token_holds(portal_admin_client, hostile_token):
    token, _ = hostile_token

    assert_escaped(portal_admin_client.get(rotate_url(token)).content.decode())
    response = portal_admin_client.post(rotate_url(token), {"grace": "1h"})
    assert_escaped(response.content.decode())


def test_when_the_cache_cannot_be_purged_the_secret_is_still_shown_with_a_warning(
    transactional_db, portal_admin_client, old, monkeypatch
):
    token, _ = old

    def down(digest):
        raise CachePurgeFailed("the token's cached answer")

    monkeypatch.setattr(cache, "purge_token", down)

    response = portal_admin_client.post(rotate_url(token), {"grace": "none"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Rotated, but the old token’s change is not yet effective everywhere." in html
    [secret] = re.findall(r'id="new-token-secret"[^>]*value="([^"]+)"', html)
    assert crypto.digest(secret) == TokenRotation.objects.get(old=token).new.digest


# --- the Overview ---------------------------------------------------------------------------


def test_the_overview_offers_rotate_for_an_active_portal_token(portal_admin_client, old):
    html = portal_admin_client.get(old[0].get_absolute_url()).content.decode()

    assert rotate_button(html)
    assert re.search(r"ROTATE</a>\s*.*REVOKE</a>\s*.*EDIT</a>", html, re.S)


@pytest.mark.parametrize("kind", ["oauth", "expired", "revoked", "rotated", "app off"])
def test_the_overview_offers_no_rotate_when_it_would_be_refused(portal_admin_client, kind):
    token, _ = make_token(
        app=AppFactory(is_active=kind != "app off"),
        origin=TokenOrigin.OAUTH if kind == "oauth" else TokenOrigin.PORTAL,
        expired=kind == "expired",
        revoked=kind == "revoked",
    )
    if kind == "rotated":
        services.token_rotate(token=token, grace=timedelta(hours=1), actor=None)

    html = portal_admin_client.get(token.get_absolute_url()).content.decode()

    assert not rotate_button(html)


def test_the_overview_offers_no_rotate_without_both_permissions(client, old):
    client.force_login(
        user_with_perms(
            "tokens.view_accesstoken", "tokens.revoke_accesstoken", "tokens.change_accesstoken"
        )
    )

    html = client.get(old[0].get_absolute_url()).content.decode()

    assert "REVOKE" in html and not rotate_button(html)


def test_each_overview_links_to_the_other_and_the_old_shows_when_it_stops(portal_admin_client, old):
    token, _ = old
    issued = services.token_rotate(token=token, grace=timedelta(hours=24), actor=None)
    stops_at = timefmt.exact(TokenRotation.objects.get(old=token).old_stops_at)

    old_page = portal_admin_client.get(token.get_absolute_url()).content.decode()
    new_page = portal_admin_client.get(issued.token.get_absolute_url()).content.decode()

    new_url = issued.token.get_absolute_url()
    assert re.search(
        rf'<dt[^>]*>Replaced by</dt><dd[^>]*><a class="code" href="{new_url}">', old_page
    )
    assert re.search(
        rf'<dt[^>]*>Stops working at</dt><dd[^>]*><time datetime="[^"]+">{stops_at}</time></dd>',
        old_page,
    )
    assert "This token was rotated: it is replaced by" in old_page
    assert re.search(
        rf'<dt[^>]*>Replaces</dt><dd[^>]*><a class="code" href="{token.get_absolute_url()}">',
        new_page,
    )
    assert "Replaced by" not in new_page
    assert rotate_button(new_page)  # the new token can be rotated in turn


def test_after_its_stop_time_the_old_overview_says_stopped_and_revoked_rotated(
    portal_admin_client, old
):
    token, _ = old
    services.token_rotate(token=token, grace=timedelta(hours=1), actor=None)
    stops_at = TokenRotation.objects.get(old=token).old_stops_at
    services.finish_due_rotations(now=stops_at + timedelta(seconds=1))

    html = portal_admin_client.get(token.get_absolute_url()).content.decode()

    assert re.search(
        rf"<dt[^>]*>Stopped at</dt><dd[^>]*><time datetime=\"{timefmt.machine(stops_at)}\">"
        rf"{timefmt.exact(stops_at)}</time>",
        html,
    )
    assert "Stops working at" not in html
    assert re.search(r"<dt[^>]*>Revocation reason</dt><dd[^>]*>rotated</dd>", html)
    assert not rotate_button(html)


def test_both_histories_show_the_rotation(portal_admin_client, old):
    token, old_secret = old
    issued = services.token_rotate(token=token, grace=timedelta(0), actor=None)

    old_history = portal_admin_client.get(
        reverse("tokens:history", args=[token.public_id])
    ).content.decode()
    new_history = portal_admin_client.get(
        reverse("tokens:history", args=[issued.token.public_id])
    ).content.decode()

    assert '<td data-label="Action">Rotated</td>' in old_history and "Rotated to:" in old_history
    assert issued.token.masked_code in old_history
    assert "Reason:</strong> <del>—</del> → <ins>rotated</ins>" in old_history
    assert "Rotated from:" in new_history and token.masked_code in new_history
    for page in (old_history, new_history):
        assert old_secret not in page and issued.secret not in page
