"""The one way the portal shows a time: ``2026-12-04 14:52:07 UTC``.

ISO-like date, 24-hour time to the second, and the abbreviation of the zone the time is
shown in (``settings.TIME_ZONE``, UTC by default; CET/CEST and the like elsewhere). Every
screen uses it: the portal's templates through the filters of ``tokens.templatetags.portal``
(``|when``, ``|when_relative``), History's before → after values (``change_text``),
Django admin through the format module ``portal/formats/en/formats.py`` (which reads
``DJANGO_DATETIME_FORMAT`` from here), and the CSV export (``tokens.export``).

Where people scan a list, the time is relative ("in 3 days", "2 hours ago"), worked out
on the server so that it needs no JavaScript, with the exact time beside it for hover,
keyboard focus and screen readers.
"""

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone

# strftime's and Django's ``date`` filter's spelling of the same format.
STRFTIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"
DJANGO_DATETIME_FORMAT = "Y-m-d H:i:s T"
DJANGO_DATE_FORMAT = "Y-m-d"
# <time datetime="…">: the instant in UTC, machine-readable.
MACHINE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

JUST_NOW_SECONDS = 45


def exact(value: datetime) -> str:
    """``value`` (aware) in the current time zone: ``2026-12-04 14:52:07 UTC``."""
    return timezone.localtime(value).strftime(STRFTIME_FORMAT)


def machine(value: datetime) -> str:
    """``value`` for a ``<time datetime>`` attribute: ``2026-12-04T14:52:07Z``."""
    return value.astimezone(UTC).strftime(MACHINE_FORMAT)


def _amount(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _nearest(value: float) -> int:
    return int(value + 0.5)


def relative(value: datetime, now: datetime | None = None) -> str:
    """How far ``value`` is from ``now``: "just now", "in 3 days", "2 hours ago".

    To the nearest whole unit (2 days 23 hours is "3 days": a token expiring on Friday
    is not "in 2 days" on Tuesday), in the largest unit under its next: under 45 seconds
    "just now", then minutes (at least 1), hours, days, months of 30 days, years of 365.
    """
    now = now or timezone.now()
    delta = value - now
    future = delta > timedelta(0)
    seconds = abs(delta).total_seconds()
    if seconds < JUST_NOW_SECONDS:
        return "just now"
    days = _nearest(seconds / 86400)
    if (minutes := max(1, _nearest(seconds / 60))) < 60:
        text = _amount(minutes, "minute")
    elif (hours := _nearest(seconds / 3600)) < 24:
        text = _amount(hours, "hour")
    elif days < 30:
        text = _amount(days, "day")
    elif (months := _nearest(seconds / 86400 / 30)) < 12:
        text = _amount(months, "month")
    else:
        text = _amount(max(1, _nearest(seconds / 86400 / 365)), "year")
    return f"in {text}" if future else f"{text} ago"


# A date and time as Python's isoformat() writes them (audit entries keep datetimes so),
# with or without seconds, fractions and offset. Nothing else is taken for a time.
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?"
)


def parse_iso(text) -> datetime | None:
    """The aware datetime that ``text`` spells in ISO 8601, or None when it spells none
    (any other text, an impossible date). A time without an offset is taken as the
    default time zone's."""
    if not isinstance(text, str) or len(text) > 40 or not _ISO_DATETIME.fullmatch(text):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value


def exact_from_utc_text(text: str | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC (as the database writes it for the CSV export) in the
    exact format of the current time zone; empty for None or empty."""
    if not text:
        return ""
    value = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return exact(value)


def zone_is_utc() -> bool:
    """Whether times are shown in UTC, all year round (the database can then write the
    exact format itself)."""
    zone = timezone.get_current_timezone()
    return all(
        datetime(2000, month, 1, tzinfo=UTC).astimezone(zone).strftime("%Z %z") == "UTC +0000"
        for month in (1, 7)
    )
