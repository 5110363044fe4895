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
- **Times**: ISO 8601 in UTC with its offset, to the second (``2026-12-04T18:55:13+00:00``);
  empty when there is none (no expiry, never used, not revoked).
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
from datetime import UTC

from django.utils import timezone

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
CHUNK_SIZE = 2000

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FIELDS = (
    "id",
    "prefix",
    "suffix",
    "owner",
    "app_name",
    "origin",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "revoked_by",
    "revocation_reason",
    "leaked_at",
    "leak_url",
    "extra_fields",
)
_ORIGINS = dict(TokenOrigin.choices)
_STATUSES = dict(TokenStatus.choices)


def neutralise(text) -> str:
    """``text`` safe in a spreadsheet: a leading ``'`` when it would start a formula."""
    text = "" if text is None else str(text)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _time(value) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else ""


def _status(revoked_at, expires_at, now) -> str:
    if revoked_at is not None:
        return _STATUSES[TokenStatus.REVOKED]
    if expires_at is not None and expires_at <= now:
        return _STATUSES[TokenStatus.EXPIRED]
    return _STATUSES[TokenStatus.ACTIVE]


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
        self.apis = dict(Api.objects.values_list("id", "name"))
        self.plans = dict(Plan.objects.values_list("id", "name"))

    def pair(self, api_id, plan_id) -> str:
        if api_id not in self.apis or plan_id not in self.plans:
            self.__init__()
        return f"{self.apis.get(api_id, '?')}: {self.plans.get(plan_id, '?')}"


def _apis_of(ids: list[int], names: _Names) -> dict[int, str]:
    """Each token's "API name: plan" pairs, in the APIs' order (name, version)."""
    pairs = defaultdict(list)
    links = (
        TokenApi.objects.filter(token_id__in=ids)
        .order_by("token_id", "api__name", "api__version")
        .values_list("token_id", "api_id", "plan_id")
    )
    for token_id, api_id, plan_id in links:
        pairs[token_id].append(names.pair(api_id, plan_id))
    return {token_id: "; ".join(texts) for token_id, texts in pairs.items()}


def rows(queryset, *, now=None) -> Iterator[list[str]]:
    """The CSV rows (header first) of ``queryset``'s tokens, in its order."""
    now = now or timezone.now()
    yield HEADER
    names = _Names()
    values = queryset.values_list(*_FIELDS).iterator(chunk_size=CHUNK_SIZE)
    for chunk in _chunks(values, CHUNK_SIZE):
        apis = _apis_of([row[0] for row in chunk], names)
        for (
            pk,
            prefix,
            suffix,
            owner,
            app_name,
            origin,
            created_at,
            expires_at,
            last_used_at,
            revoked_at,
            revoked_by,
            revocation_reason,
            leaked_at,
            leak_url,
            extra_fields,
        ) in chunk:
            yield [
                f"{prefix}…{suffix}",
                neutralise(owner),
                neutralise(app_name),
                _status(revoked_at, expires_at, now),
                _ORIGINS.get(origin, origin),
                neutralise(apis.get(pk, "")),
                _time(created_at),
                _time(expires_at),
                _time(last_used_at),
                _time(revoked_at),
                neutralise(revoked_by),
                neutralise(revocation_reason),
                _time(leaked_at),
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
    writer = csv.writer(_Line())
    lines = [BOM]
    for row in rows(queryset, now=now):
        lines.append(writer.writerow(row))
        if len(lines) >= CHUNK_SIZE // 4:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()
