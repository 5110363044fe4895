"""The Access Tokens list as CSV (``GET /tokens/export.csv``): its rows, streamed.

Choices, each for a reason:

- **Columns**: the list's (Code masked, Owner, App, Status, APIs, Created, Expires, Last
  used) and Origin, Revoked at, Revoked by, Revocation reason, Leaked at, Leak URL and
  **one "Extra fields" column** of ``name=value`` pairs joined by ``"; "``: one column per
  field name would need every name before the first row, a pass over all of a million
  tokens' extra fields before anything is sent. The cell is for reading; a name or value
  holding ``"; "`` or ``=`` is not escaped.
- **APIs**: ``"API name: plan"`` pairs joined by ``"; "``, in the API's order.
- **Never a secret**: the code is masked (prefix…suffix); neither digest nor secret is read.
- **CSV injection**: a text cell beginning with ``=``, ``+``, ``-``, ``@``, tab or carriage
  return gets a leading ``'``, so that a spreadsheet shows it as text and never runs it
  as a formula (OWASP, "CSV Injection"). Times and fixed labels never begin with one.
- **Times**: as on the screens (portal.timefmt), to the second with the zone's abbreviation
  (``2026-12-04 18:55:13 UTC``); empty when there is none (no expiry, never used, not
  revoked). Spreadsheets read it as text; ``YYYY-MM-DD HH:MM:SS`` before the zone parses
  as a date and time anywhere.
- **Encoding**: UTF-8 with a byte order mark, so that Excel reads non-ASCII names right
  (without it, Excel assumes the machine's code page); ``csv`` and most tools skip it
  (Python: ``encoding="utf-8-sig"``). Lines end with CRLF (RFC 4180).
- **Streaming, constant memory**: the tokens are read with ``values_list().iterator()``
  (PostgreSQL: a server-side cursor; SQLite: chunks of one cursor), no model instance per
  row, and the APIs of each chunk in one query of ids, their names from a dictionary of
  the (small) API and plan tables read once. bench/export.py measures it (bench/RESULTS.md).
"""

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator

from django.db import connection
from django.db.models import Case, CharField, Func, Value, When
from django.utils import timezone

from portal import timefmt
from tokens.models import Api, Plan, TokenApi, TokenOrigin, TokenStatus

HEADER = [
    "Code",
    "Owner",
    "App",
    "Status",
    "Origin",
    "APIs",
    "Created",
    "Expires",
    "Last used",
    "Revoked at",
    "Revoked by",
    "Revocation reason",
    "Leaked at",
    "Leak URL",
    "Extra fields",
]

BOM = "\ufeff"
CHUNK_SIZE = 5000

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Times are written by the database (UtcText), the status decided by it (_status): loading
# a million timestamps into aware datetimes to format them again took a third of the time.
FIELDS = (
    "id",
    "prefix",
    "suffix",
    "owner",
    "app_name",
    "status_label",
    "origin",
    "created",
    "expires",
    "last_used",
    "revoked",
    "revoked_by",
    "revocation_reason",
    "leaked",
    "leak_url",
    "extra_fields",
)


class UtcText(Func):
    """A time as ``YYYY-MM-DD HH:MM:SS`` text in UTC, with ``suffix`` after it; NULL stays
    NULL. With the suffix " UTC" it is the portal's exact format (portal.timefmt) when
    times are shown in UTC, as by default."""

    output_field = CharField()

    def __init__(self, expression, suffix="", **extra):
        if suffix not in ("", " UTC"):
            raise ValueError("suffix: '' or ' UTC'")
        self.suffix = suffix
        super().__init__(expression, **extra)

    # The format is a query parameter, not SQL text: a literal % in the SQL breaks Django's
    # logging of queries (DEBUG=1), which formats the SQL with its parameters.
    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        suffix = ' "UTC"' if self.suffix else ""
        return (
            f"to_char(({sql}) AT TIME ZONE 'UTC', %s)",
            [*params, f"YYYY-MM-DD HH24:MI:SS{suffix}"],
        )

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"strftime(%s, {sql})", [f"%Y-%m-%d %H:%M:%S{self.suffix}", *params]


def _annotated(queryset, now):
    # Shown in UTC (the default): the database writes the exact format. Else it writes
    # the time in UTC and rows_of_values turns it into the zone's (a strptime per cell).
    suffix = " UTC" if timefmt.zone_is_utc() else ""
    return queryset.annotate(
        status_label=_status(now),
        created=UtcText("created_at", suffix),
        expires=UtcText("expires_at", suffix),
        last_used=UtcText("last_used_at", suffix),
        revoked=UtcText("revoked_at", suffix),
        leaked=UtcText("leaked_at", suffix),
    )


_ORIGINS = dict(TokenOrigin.choices)


def neutralise(text) -> str:
    """``text`` safe in a spreadsheet: a leading ``'`` when it would start a formula."""
    text = "" if text is None else str(text)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _status(now) -> Case:
    return Case(
        When(revoked_at__isnull=False, then=Value(TokenStatus.REVOKED.label)),
        When(expires_at__lte=now, then=Value(TokenStatus.EXPIRED.label)),
        default=Value(TokenStatus.ACTIVE.label),
        output_field=CharField(),
    )


def _extra_fields(pairs) -> str:
    if not isinstance(pairs, list):
        return ""
    return "; ".join(
        f"{name}={value}"
        for name, value in (p for p in pairs if isinstance(p, list | tuple) and len(p) == 2)
    )


class _Line:
    """What ``csv.writer`` writes to: hands back the line instead of keeping it."""

    def write(self, text):
        return text


class _Names:
    """The "API name: plan" text of (api id, plan id), from the API and plan tables read
    once per export (an API or plan added meanwhile is read when first seen)."""

    def __init__(self):
        self.apis = {
            pk: (name, version)
            for pk, name, version in Api.objects.values_list("id", "name", "version")
        }
        self.plans = dict(Plan.objects.values_list("id", "name"))

    def order(self, link):
        return self.apis.get(link[0], ("", ""))

    def pair(self, api_id, plan_id) -> str:
        if api_id not in self.apis or plan_id not in self.plans:
            self.__init__()
        api = self.apis.get(api_id, ("?",))[0]
        return f"{api}: {self.plans.get(plan_id, '?')}"


def _apis_of(ids: list[int], names: _Names) -> dict[int, str]:
    """Each token's "API name: plan" pairs, in the APIs' order (name, version): the links
    alone, no join and no sort in the database; the names from ``names``."""
    links = defaultdict(list)
    if connection.vendor == "postgresql":
        # One array parameter: psycopg reads a query of 2,000 placeholders slowly.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT token_id, api_id, plan_id FROM tokens_tokenapi WHERE token_id = ANY(%s)",
                [ids],
            )
            found = cursor.fetchall()
    else:
        found = TokenApi.objects.filter(token_id__in=ids).values_list(
            "token_id", "api_id", "plan_id"
        )
    for token_id, api_id, plan_id in found:
        links[token_id].append((api_id, plan_id))
    return {
        token_id: "; ".join(names.pair(a, p) for a, p in sorted(pairs, key=names.order))
        for token_id, pairs in links.items()
    }


def rows(queryset, *, now=None) -> Iterator[list[str]]:
    """The CSV rows (header first) of ``queryset``'s tokens, in its order."""
    now = now or timezone.now()
    values = _annotated(queryset, now).values_list(*FIELDS).iterator(chunk_size=CHUNK_SIZE)
    return rows_of_values(values)


def rows_of_values(values: Iterable[tuple]) -> Iterator[list[str]]:
    """The CSV rows (header first) of tokens read as tuples of ``FIELDS`` (``annotated``)."""
    yield HEADER
    names = _Names()
    # The times as _annotated had the database write them: exact already, or in UTC.
    in_utc = timefmt.zone_is_utc()
    for chunk in _chunks(values, CHUNK_SIZE):
        apis = _apis_of([row[0] for row in chunk], names)
        for (
            pk,
            prefix,
            suffix,
            owner,
            app_name,
            status,
            origin,
            created,
            expires,
            last_used,
            revoked,
            revoked_by,
            revocation_reason,
            leaked,
            leak_url,
            extra_fields,
        ) in chunk:
            if not in_utc:
                created, expires, last_used, revoked, leaked = map(
                    timefmt.exact_from_utc_text, (created, expires, last_used, revoked, leaked)
                )
            yield [
                f"{prefix}…{suffix}",
                neutralise(owner),
                neutralise(app_name),
                status,
                _ORIGINS.get(origin, origin),
                neutralise(apis.get(pk, "")),
                created,
                expires or "",
                last_used or "",
                revoked or "",
                neutralise(revoked_by),
                neutralise(revocation_reason),
                leaked or "",
                neutralise(leak_url),
                neutralise(_extra_fields(extra_fields)),
            ]


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def csv_bytes(queryset, *, now=None) -> Iterator[bytes]:
    """The CSV file of ``queryset``'s tokens as UTF-8 (BOM first), a chunk of rows at a time."""
    return encode(rows(queryset, now=now))


def encode(rows: Iterable[list[str]]) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    lines = [BOM]
    for row in rows:
        lines.append(writer.writerow(row))
        if len(lines) >= CHUNK_SIZE // 4:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()
