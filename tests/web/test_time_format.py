"""One way to show time (issue 15, item 3): ``2026-12-04 14:52:07 UTC`` in a ``<time>``
everywhere (portal, History's before → after, admin, CSV: tests/web/test_export.py),
relative where people scan, and the badge "Expires soon" beside Active."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from portal import timefmt
from tests.factories import XSS, XSS_ESCAPED, make_token
from tokens import services
from tokens.models import EXPIRING_SOON_DAYS, AccessToken, AuditAction, AuditEvent
from tokens.templatetags.portal import change_text, when, when_relative

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

EXACT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")
MOMENT = datetime(2026, 12, 4, 14, 52, 7, 371347, tzinfo=UTC)


# --- The format -----------------------------------------------------------------------------


def test_exact_is_iso_like_24_hours_to_the_second_with_the_zone():
    assert timefmt.exact(MOMENT) == "2026-12-04 14:52:07 UTC"
    assert timefmt.machine(MOMENT) == "2026-12-04T14:52:07Z"


@override_settings(TIME_ZONE="Europe/Paris")
def test_exact_is_in_the_zone_of_time_zone_with_its_abbreviation():
    assert timefmt.exact(MOMENT) == "2026-12-04 15:52:07 CET"
    assert timefmt.exact(MOMENT.replace(month=7)) == "2026-07-04 16:52:07 CEST"
    # The machine-readable instant stays in UTC.
    assert timefmt.machine(MOMENT) == "2026-12-04T14:52:07Z"
    assert not timefmt.zone_is_utc()


def test_when_is_a_time_element_and_none_shows_the_templates_word():
    assert when(MOMENT) == ('<time datetime="2026-12-04T14:52:07Z">2026-12-04 14:52:07 UTC</time>')
    assert isinstance(when(MOMENT), SafeString)
    assert when(None) == "—"
    assert when(None, "Never") == "Never"
    assert when(None, XSS) == XSS_ESCAPED


def test_when_relative_says_how_far_and_keeps_the_exact_time_beside_it():
    now = timezone.now()
    html = when_relative(now + timedelta(days=3, minutes=1))

    assert re.fullmatch(
        r'<time class="when-relative text-nowrap" datetime="[0-9T:Z-]+" tabindex="0">'
        r'in 3 days<span class="when-exact"> ' + EXACT.pattern + r"</span></time>",
        html,
    )
    assert (
        when_relative(now - timedelta(hours=2, minutes=5))
        .split('tabindex="0">')[1]
        .startswith("2 hours ago<")
    )
    assert when_relative(None, "Never") == "Never"


SECOND, MINUTE, HOUR, DAY = 1, 60, 3600, 86400


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "just now"),
        (44, "just now"),
        (45, "1 minute"),
        (89, "1 minute"),
        (90, "2 minutes"),
        (HOUR - 31, "59 minutes"),
        (HOUR - 30, "1 hour"),
        (23 * HOUR + 29 * MINUTE, "23 hours"),
        (23 * HOUR + 30 * MINUTE, "1 day"),
        (DAY + 11 * HOUR, "1 day"),
        (DAY + 12 * HOUR, "2 days"),
        (2 * DAY + 23 * HOUR, "3 days"),
        (29 * DAY + 11 * HOUR, "29 days"),
        (29 * DAY + 12 * HOUR, "1 month"),
        (60 * DAY, "2 months"),
        (344 * DAY, "11 months"),
        (345 * DAY, "1 year"),
        (365 * DAY, "1 year"),
        (3 * 365 * DAY, "3 years"),
    ],
)
def test_relative_at_its_boundaries_past_and_future(seconds, text):
    now = MOMENT
    ahead = timefmt.relative(now + timedelta(seconds=seconds), now=now)
    behind = timefmt.relative(now - timedelta(seconds=seconds), now=now)

    if text == "just now":
        assert ahead == behind == "just now"
    else:
        assert ahead == f"in {text}"
        assert behind == f"{text} ago"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-10-31T14:48:27.371347+00:00", datetime(2027, 10, 31, 14, 48, 27, 371347, UTC)),
        ("2027-10-31T14:48:27+00:00", datetime(2027, 10, 31, 14, 48, 27, tzinfo=UTC)),
        ("2027-10-31T14:48:27Z", datetime(2027, 10, 31, 14, 48, 27, tzinfo=UTC)),
        ("2027-10-31T16:48:27+02:00", datetime(2027, 10, 31, 14, 48, 27, tzinfo=UTC)),
        ("2027-10-31T14:48:27", datetime(2027, 10, 31, 14, 48, 27, tzinfo=UTC)),  # default zone
        ("2027-13-45T14:48:27+00:00", None),  # no such day
        ("2027-10-31", None),  # a date alone is not a time
        ("2027-10-31T14:48:27+00:00 and more", None),
        ("Ada Lovelace", None),
        ("", None),
        (42, None),
        ("9" * 100, None),
    ],
)
def test_parse_iso_reads_the_audit_entries_times_and_nothing_else(text, expected):
    assert timefmt.parse_iso(text) == expected


# --- History's before → after values --------------------------------------------------------


def test_change_text_shows_an_iso_time_in_the_one_format():
    html = change_text("2027-10-31T14:48:27.371347+00:00")

    assert html == '<time datetime="2027-10-31T14:48:27Z">2027-10-31 14:48:27 UTC</time>'


def test_change_text_escapes_anyones_text_and_keeps_the_rest_as_before():
    assert change_text(XSS) == XSS_ESCAPED
    assert change_text([[XSS, "2027-10-31T14:48:27+00:00"], ["team", "core"]]) == (
        f'{XSS_ESCAPED} = <time datetime="2027-10-31T14:48:27Z">2027-10-31 14:48:27 UTC</time>'
        "; team = core"
    )
    assert change_text({XSS: XSS}) == f"{XSS_ESCAPED}: {XSS_ESCAPED}"
    assert change_text(["Orders", XSS]) == f"Orders, {XSS_ESCAPED}"
    assert change_text(None) == change_text("") == change_text([]) == "—"
    assert change_text(7) == "7"
    assert "<script>" not in change_text([XSS, {"a": XSS}])


def test_history_shows_before_and_after_times_in_the_one_format(portal_admin_client):
    expires = timezone.now() + timedelta(days=30)
    token, _ = make_token(expires_at=expires, owner=XSS)
    services.token_revoke(token=token, actor=None, reason="test")
    revoked_at = AccessToken.objects.get(pk=token.pk).revoked_at

    html = portal_admin_client.get(reverse("tokens:history", args=[token.public_id]))
    html = html.content.decode()

    # The audit entries keep ISO strings; none is shown raw.
    assert not re.search(r"\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00", html)
    assert (
        f'<ins><time datetime="{timefmt.machine(expires)}">{timefmt.exact(expires)}</time>' in html
    )
    assert (
        f'<time datetime="{timefmt.machine(revoked_at)}">{timefmt.exact(revoked_at)}</time>' in html
    )
    assert XSS_ESCAPED in html and "<script>alert(1)" not in html
    # When: relative, the exact time beside it.
    when_cell = r'<td class="text-nowrap"[^>]*><time class="when-relative[^>]*>just now<'
    assert re.search(when_cell, html)


# --- Screens ----------------------------------------------------------------------------------


def _list_row(html: str, token) -> str:
    return re.search(
        rf"<tr>(?:(?!</tr>).)*{re.escape(token.masked_code)}(?:(?!</tr>).)*</tr>", html, re.S
    ).group(0)


def test_the_list_shows_relative_times_with_the_exact_time_in_time_elements(portal_admin_client):
    token, _ = make_token(expires_at=timezone.now() + timedelta(days=3, hours=1))
    token.refresh_from_db()

    row = _list_row(portal_admin_client.get(reverse("tokens:list")).content.decode(), token)

    cells = re.findall(r'<time class="when-relative text-nowrap" datetime="([^"]+)"[^>]*>', row)
    assert cells == [timefmt.machine(token.created_at), timefmt.machine(token.expires_at)]
    assert f'>just now<span class="when-exact"> {timefmt.exact(token.created_at)}</span>' in row
    assert f'>in 3 days<span class="when-exact"> {timefmt.exact(token.expires_at)}</span>' in row
    assert re.search(r"<td[^>]*>Never</td>", row)  # never used


def test_the_overview_shows_exact_times_in_time_elements(portal_admin_client):
    token, _ = make_token(expires_at=timezone.now() + timedelta(days=30))
    token.refresh_from_db()

    html = portal_admin_client.get(token.get_absolute_url()).content.decode()

    for value in (token.created_at, token.expires_at):
        assert f'<time datetime="{timefmt.machine(value)}">{timefmt.exact(value)}</time>' in html
    assert re.search(r"<dt[^>]*>Last used</dt><dd[^>]*>Never</dd>", html)
    assert "|date" not in html


def test_no_template_formats_a_date_by_itself():
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "templates"
    offenders = [
        str(path)
        for path in templates.rglob("*.html")
        if re.search(r"\|\s*date\b", path.read_text())
    ]
    assert offenders == []


# --- Admin --------------------------------------------------------------------------------


def test_admin_shows_times_in_the_one_format(client, django_user_model):
    admin = django_user_model.objects.create_superuser(
        "root", "root@example.test", "pw-long-enough"
    )
    client.force_login(admin)
    token, _ = make_token(expires_at=timezone.now() + timedelta(days=30))
    token.refresh_from_db()
    event = token.events.get(action=AuditAction.CREATED)
    created = when(token.created_at)
    assert created == (
        f'<time datetime="{timefmt.machine(token.created_at)}">'
        f"{timefmt.exact(token.created_at)}</time>"
    )

    changelist = client.get(reverse("admin:tokens_accesstoken_changelist")).content.decode()
    change = client.get(reverse("admin:tokens_accesstoken_change", args=[token.pk])).content
    events = client.get(reverse("admin:tokens_auditevent_changelist")).content.decode()
    event_page = client.get(reverse("admin:tokens_auditevent_change", args=[event.pk])).content

    assert created in changelist
    # Read-only fields, through the format module (portal/formats/en/formats.py).
    assert timefmt.exact(token.created_at) in change.decode()
    assert timefmt.exact(token.expires_at) in change.decode()
    assert f'<time datetime="{timefmt.machine(event.created_at)}">' in events
    assert timefmt.exact(token.expires_at) in events  # the created event's "Expires" value
    assert timefmt.exact(event.created_at) in event_page.decode()
    for page in (changelist, change.decode(), events, event_page.decode()):
        assert not re.search(r"\b(a\.m\.|p\.m\.)", page)


# --- Expires soon -------------------------------------------------------------------------


def _token(**changes) -> AccessToken:
    token, _ = make_token()
    AccessToken.objects.filter(pk=token.pk).update(**changes)
    return AccessToken.objects.get(pk=token.pk)


def test_the_seven_day_rule_lives_in_the_model_and_its_queryset_agrees():
    now = timezone.now()
    soon = _token(expires_at=now + timedelta(days=3))
    edge = _token(expires_at=now + timedelta(days=EXPIRING_SOON_DAYS, seconds=-60))
    later = _token(expires_at=now + timedelta(days=EXPIRING_SOON_DAYS + 1))
    expired = _token(expires_at=now - timedelta(hours=1))
    revoked = _token(expires_at=now + timedelta(days=3), revoked_at=now, revoked_by="x")
    never = _token(expires_at=None)

    flagged = {
        token.pk for token in (soon, edge, later, expired, revoked, never) if token.expires_soon
    }

    assert flagged == {soon.pk, edge.pk}
    assert set(AccessToken.objects.expiring_soon().values_list("pk", flat=True)) == flagged
    assert EXPIRING_SOON_DAYS == 7


def test_the_badge_expires_soon_is_beside_active_in_the_list_and_overview(portal_admin_client):
    now = timezone.now()
    soon = _token(expires_at=now + timedelta(days=3))
    later = _token(expires_at=now + timedelta(days=8))
    expired = _token(expires_at=now - timedelta(hours=1))
    revoked = _token(expires_at=now + timedelta(days=3), revoked_at=now, revoked_by="x")

    html = portal_admin_client.get(reverse("tokens:list")).content.decode()

    badge = re.compile(
        r'<span class="badge text-bg-success">Active</span>\s+<span class="badge text-bg-warning'
        r'[^"]*"[^>]*><i class="fa-solid fa-hourglass-half me-1" aria-hidden="true"></i>'
        r"Expires soon</span>"
    )
    assert badge.search(_list_row(html, soon))
    for token in (later, expired, revoked):
        assert "Expires soon</span>" not in _list_row(html, token)
    assert badge.search(portal_admin_client.get(soon.get_absolute_url()).content.decode())
    assert (
        "Expires soon</span>"
        not in portal_admin_client.get(later.get_absolute_url()).content.decode()
    )


def test_audit_iso_values_of_other_fields_render_as_times_too(portal_admin_client):
    # An audit entry of any field holding an ISO time (e.g. revoked_at) is shown alike.
    token, _ = make_token()
    AuditEvent.objects.create(
        token=token,
        action=AuditAction.EDITED,
        actor_label="x",
        token_version=2,
        changes={"revoked_at": [None, "2027-10-31T14:48:27.371347+00:00"]},
    )

    html = portal_admin_client.get(reverse("tokens:history", args=[token.public_id])).content
    assert '<ins><time datetime="2027-10-31T14:48:27Z">2027-10-31 14:48:27 UTC</time></ins>' in (
        html.decode()
    )


def test_the_admin_revoke_confirmation_shows_times_in_time_elements(support_client):
    token, _ = make_token(expires_at=timezone.now() + timedelta(days=30))
    token.refresh_from_db()

    html = support_client.get(
        reverse("admin:tokens_accesstoken_revoke", args=[token.pk])
    ).content.decode()

    assert f'<time datetime="{timefmt.machine(token.created_at)}">' in html
    assert f">{timefmt.exact(token.expires_at)}</time>" in html
