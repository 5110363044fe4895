"""Tokens a secret scanner reported public: the Leaked marker on the list and the Overview,
the URL (a link only when http or https), the history, and Django admin's view of them."""

import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from tests.factories import XSS, assert_escaped, make_token
from tokens import services
from tokens.models import AccessToken

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LEAK_URL = "https://github.com/octocat/Hello-World/blob/1234567/config.yml"


def report(secret, url=LEAK_URL, digest="d1"):
    services.report_leaked(
        [services.ReportedSecret(token=secret, type="token_portal_access_token", url=url)],
        key_identifier="k",
        body_digest=digest,
    )


def _status_cells(html: str) -> dict[str, str]:
    """{masked code: the row's Status cell}."""
    rows = re.findall(
        r'<td class="code">([^<]+)</td>\s*<td[^>]*>.*?</td>\s*<td[^>]*>.*?</td>\s*'
        r"<td[^>]*>(.*?)</td>",
        html,
        re.S,
    )
    return dict(rows)


def _leaked_row(html: str) -> str | None:
    match = re.search(r"<dt[^>]*>Leaked</dt><dd[^>]*>(.*?)</dd>", html, re.S)
    return match.group(1) if match else None


def test_the_list_marks_leaked_tokens_in_their_status_cell(portal_admin_client):
    leaked, secret = make_token(owner="Leaky")
    quiet, _ = make_token(owner="Quiet")
    report(secret)
    leaked.refresh_from_db()

    html = portal_admin_client.get(reverse("tokens:list")).content.decode()

    cells = _status_cells(html)
    assert "Leaked" in cells[leaked.masked_code] and "Revoked" in cells[leaked.masked_code]
    assert "Leaked" not in cells[quiet.masked_code]
    assert html.count(">Leaked</span>") == 1


def test_the_overview_shows_when_and_where_it_was_found_with_a_safe_link(portal_admin_client):
    token, secret = make_token()
    report(secret)
    token.refresh_from_db()

    html = portal_admin_client.get(token.get_absolute_url()).content.decode()

    row = _leaked_row(html)
    assert row is not None and ">Leaked</span>" in row
    assert token.leaked_at.strftime("%Y-%m-%d") in row
    links = re.findall(r"<a [^>]*>", row)
    assert links == [f'<a class="text-break" href="{LEAK_URL}" rel="noopener noreferrer nofollow">']
    assert "This token was revoked on" in html and "by secret scanning" in html
    assert f"leaked: {LEAK_URL}" in html  # the revocation reason


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(document.cookie)", "data:text/html,<b>x</b>", "//evil.example/x", "http:x"],
)
def test_a_url_that_is_not_http_is_shown_as_text_never_as_a_link(portal_admin_client, url):
    token, secret = make_token()
    report(secret, url=url)

    html = portal_admin_client.get(token.get_absolute_url()).content.decode()

    row = _leaked_row(html)
    assert "<a " not in row
    assert f"found at {escape(url)}" in row


def test_a_hostile_url_is_escaped_in_text_and_in_the_link(portal_admin_client):
    token, secret = make_token()
    report(secret, url=f'https://x.example/"><b>{XSS}')

    html = portal_admin_client.get(token.get_absolute_url()).content.decode()

    assert_escaped(_leaked_row(html))
    assert '"><b>' not in html


def test_a_token_never_reported_has_no_leaked_row(portal_admin_client):
    token, _ = make_token()

    html = portal_admin_client.get(token.get_absolute_url()).content.decode()

    assert _leaked_row(html) is None and ">Leaked<" not in html


def test_the_history_names_the_report_and_the_revocation(portal_admin_client):
    token, secret = make_token()
    report(secret)

    html = portal_admin_client.get(reverse("tokens:history", args=[token.public_id])).content
    html = html.decode()

    assert "Reported leaked" in html and LEAK_URL in html
    assert html.count("secret scanning") >= 2  # who reported it, who revoked it


def test_admin_shows_the_leak_read_only_and_filters_leaked_tokens(client, support_user):
    client.force_login(support_user)
    leaked, secret = make_token(owner="Leaky")
    make_token(owner="Quiet")
    report(secret)

    page = client.get(reverse("admin:tokens_accesstoken_change", args=[leaked.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert LEAK_URL in html
    assert 'name="leak_url"' not in html  # read-only: no input

    listed = client.get(reverse("admin:tokens_accesstoken_changelist"), {"leaked": "yes"})
    assert [token.pk for token in listed.context["cl"].result_list] == [leaked.pk]
    others = client.get(reverse("admin:tokens_accesstoken_changelist"), {"leaked": "no"})
    assert leaked.pk not in [token.pk for token in others.context["cl"].result_list]
    assert AccessToken.objects.count() == 2
