"""The token Overview: Basic info, APIs and Plans, REVOKE and EDIT, and what it says."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    XSS,
    XSS_ESCAPED,
    AppFactory,
    api_with_plans,
    assert_escaped,
    make_token,
    user_with_perms,
)
from tokens import services
from tokens.models import AccessToken, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def _page(client, token) -> str:
    response = client.get(token.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


def _buttons(html: str) -> set[str]:
    actions = html.split('class="page-actions', 1)[1].split("</div>", 1)[0]
    return set(re.findall(r">(REVOKE|EDIT)<", actions))


def test_overview_has_the_two_tabs(portal_admin_client):
    token, _ = make_token()

    html = _page(portal_admin_client, token)

    tabs = re.findall(r'role="tab"[^>]*>([^<]+)</a>', html)
    assert tabs == ["Basic info", "APIs and Plans"]


def test_basic_info_shows_every_field_of_the_token(portal_admin_client, portal_admin):
    app = AppFactory(name="Acme Checkout")
    token, secret = make_token(
        app=app,
        owner="Ada Lovelace",
        extra_fields=[["Cost center", "CC-1042"], ["Environment", "production"]],
        expires_at=timezone.now() + timedelta(days=30),
        actor=portal_admin,
    )
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    token.refresh_from_db()

    html = _page(portal_admin_client, token)

    basic = html.split('id="basic-info"', 1)[1].split("</section>", 1)[0]
    fields = dict(
        re.findall(r'<dt class="col-sm-3">([^<]+)</dt>\s*<dd[^>]*>(.*?)</dd>', basic, re.S)
    )
    assert token.masked_code in fields["Code"]
    assert fields["Status"] == "Active"
    assert fields["Owner"] == "Ada Lovelace"
    assert "Acme Checkout" in fields["App"]
    assert app.client_id in fields["App"]
    assert fields["Origin"] == "Portal"
    assert timezone.localtime(token.created_at).strftime("%Y-%m-%d %H:%M:%S") in fields["Created"]
    assert "by admin-ada" in fields["Created"]
    assert timezone.localtime(token.expires_at).strftime("%Y-%m-%d %H:%M:%S") in fields["Expires"]
    assert fields["Last used"] != "Never"
    assert str(token.public_id) in fields["Token ID"]
    assert re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", fields["Extra Fields"]) == [
        ("Cost center", "CC-1042"),
        ("Environment", "production"),
    ]
    assert secret not in html


def test_never_expiring_unused_token_says_never(portal_admin_client):
    token, _ = make_token()

    html = _page(portal_admin_client, token)

    assert re.search(r"<dt[^>]*>Expires</dt><dd[^>]*>Never</dd>", html)
    assert re.search(r"<dt[^>]*>Last used</dt><dd[^>]*>Never</dd>", html)


def test_apis_and_plans_tab_lists_each_api_with_its_plan(portal_admin_client):
    _, (gold,) = api_with_plans("Gold", name="Payments", version="v2", base_path="/payments")
    _, (free,) = api_with_plans("Free", name="Orders", base_path="/orders")
    free.rate_limit = None
    free.save()
    token, _ = make_token(plans=[gold, free])

    html = _page(portal_admin_client, token)

    section = html.split('id="apis-and-plans"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(
        r"<tr><td[^>]*>([^<]+)</td><td[^>]*>([^<]+)</td><td[^>]*>([^<]+)</td><td[^>]*>([^<]+)</td></tr>",
        section,
    )
    assert rows == [
        ("Orders v1", "/orders", "Free", "Unlimited"),
        ("Payments v2", "/payments", "Gold", "600 requests/min"),
    ]


def test_token_without_apis_says_every_gateway_check_answers_403(portal_admin_client):
    token, _ = make_token()

    assert "not associated with any API" in _page(portal_admin_client, token)


def test_active_portal_token_offers_revoke_and_edit(portal_admin_client):
    token, _ = make_token()

    html = _page(portal_admin_client, token)

    assert _buttons(html) == {"REVOKE", "EDIT"}
    assert reverse("tokens:revoke", args=[token.public_id]) in html
    assert reverse("tokens:edit", args=[token.public_id]) in html


def test_support_staff_are_offered_revoke_but_not_edit(support_client):
    token, _ = make_token()

    assert _buttons(_page(support_client, token)) == {"REVOKE"}


def test_oauth_token_is_not_revocable_here_and_the_page_says_how_it_is(portal_admin_client):
    app = AppFactory(name="Mobile App")
    token, _ = make_token(app=app, origin=TokenOrigin.OAUTH)

    html = _page(portal_admin_client, token)

    assert _buttons(html) == {"EDIT"}
    assert reverse("tokens:revoke", args=[token.public_id]) not in html
    assert "can be revoked only through the revocation HTTP call (RFC 7009)" in html
    assert "curl -X POST http://testserver/oauth/revoke/" in html
    assert f"{app.client_id}:$CLIENT_SECRET" in html
    assert "token_type_hint=access_token" in html
    assert "client_credentials" in html


@pytest.mark.parametrize("origin", [TokenOrigin.PORTAL, TokenOrigin.OAUTH])
def test_expired_token_offers_neither_button_and_says_it_expired(portal_admin_client, origin):
    token, _ = make_token(expired=True, origin=origin)

    html = _page(portal_admin_client, token)

    assert _buttons(html) == set()
    assert "This token expired on" in html
    assert ">Expired<" in html


def test_revoked_token_says_who_revoked_it_when_and_why(portal_admin_client, portal_admin):
    token, _ = make_token()
    services.token_revoke(token=token, actor=portal_admin, reason="Leaked in a public repo")
    token.refresh_from_db()

    html = _page(portal_admin_client, token)

    assert _buttons(html) == set()
    assert "This token was revoked on" in html
    assert "by admin-ada" in html
    assert "HTTP 401 (Unauthorized)" in html
    assert re.search(r"<dt[^>]*>Status</dt><dd[^>]*>Revoked</dd>", html)
    assert re.search(r"<dt[^>]*>Revocation reason</dt><dd[^>]*>Leaked in a public repo</dd>", html)


def test_recent_history_is_shown_with_a_link_to_the_full_history(portal_admin_client, portal_admin):
    token, _ = make_token(actor=portal_admin)

    html = _page(portal_admin_client, token)

    assert "Recent history" in html
    assert f'href="{reverse("tokens:history", args=[token.public_id])}"' in html
    assert ">Created<" in html


def test_without_the_audit_permission_the_history_is_not_offered():
    token, _ = make_token()
    client = Client()
    client.force_login(user_with_perms("tokens.view_accesstoken"))

    html = _page(client, token)

    assert "Recent history" not in html
    assert reverse("tokens:history", args=[token.public_id]) not in html
    assert _buttons(html) == set()


def test_unknown_token_is_404(portal_admin_client):
    response = portal_admin_client.get(reverse("tokens:detail", args=[uuid.uuid4()]))

    assert response.status_code == 404


def test_token_cannot_be_reached_by_database_id_or_secret(portal_admin_client):
    token, secret = make_token()

    assert portal_admin_client.get(f"/tokens/{token.pk}/").status_code == 404
    assert portal_admin_client.get(f"/tokens/{secret}/").status_code == 404


def test_overview_is_never_cached(portal_admin_client):
    token, _ = make_token()

    response = portal_admin_client.get(token.get_absolute_url())

    assert "no-store" in response["Cache-Control"]


def test_overview_query_count_does_not_grow_with_apis_extra_fields_or_history(
    portal_admin_client, portal_admin
):
    few_plans = [api_with_plans("Gold")[1][0]]
    small, _ = make_token(plans=few_plans, actor=portal_admin)
    many_plans = [api_with_plans("Gold")[1][0] for _ in range(8)]
    big, _ = make_token(
        plans=many_plans, extra_fields=[[f"k{i}", "v"] for i in range(10)], actor=portal_admin
    )
    for index in range(6):
        services.token_update(
            token=big,
            expected_version=big.version,
            owner=f"owner {index}",
            extra_fields=big.extra_fields,
            plans=many_plans,
            actor=portal_admin,
        )
    portal_admin_client.get(small.get_absolute_url())

    with CaptureQueriesContext(connection) as few:
        _page(portal_admin_client, small)
    with CaptureQueriesContext(connection) as many:
        _page(portal_admin_client, big)

    assert len(many.captured_queries) == len(few.captured_queries)


# --- HTML escaping --------------------------------------------------------------------------


def test_user_text_is_escaped_on_the_overview(portal_admin_client, hostile_token):
    token, _ = hostile_token

    html = _page(portal_admin_client, token)

    assert_escaped(html)
    for text in ("Owner", "App", "Name", "Value", "API", "Plan"):
        assert f"{text} {XSS_ESCAPED}" in html


def test_revocation_reason_and_oauth_help_are_escaped(portal_admin_client, portal_admin):
    app = AppFactory(name=f"App {XSS}")
    oauth, _ = make_token(app=app, origin=TokenOrigin.OAUTH)
    revoked, _ = make_token(app=app)
    services.token_revoke(token=revoked, actor=portal_admin, reason=f"Reason {XSS}")

    oauth_html = _page(portal_admin_client, oauth)
    revoked_html = _page(portal_admin_client, revoked)

    assert_escaped(oauth_html)
    assert f"<strong>App {XSS_ESCAPED}</strong>" in oauth_html
    assert_escaped(revoked_html)
    assert f"Reason {XSS_ESCAPED}" in revoked_html
