"""Django's date and time formats for English (``FORMAT_MODULE_PATH``): admin shows times
as the portal does, ``2026-12-04 14:52:07 UTC`` (portal.timefmt), not "Dec. 4, 2026, 2:52
p.m.". Input formats are left to Django's own English module."""

from portal.timefmt import DJANGO_DATE_FORMAT, DJANGO_DATETIME_FORMAT

DATETIME_FORMAT = DJANGO_DATETIME_FORMAT
SHORT_DATETIME_FORMAT = DJANGO_DATETIME_FORMAT
DATE_FORMAT = DJANGO_DATE_FORMAT
SHORT_DATE_FORMAT = DJANGO_DATE_FORMAT
TIME_FORMAT = "H:i:s"
