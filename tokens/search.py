"""The SQL behind the tokens list's search and its sort by app.

Text search: on SQLite through an FTS5 trigram index (migration 0006), on PostgreSQL
through pg_trgm indexes (migration 0004). ``AccessToken.objects.search()``
(tokens.models) decides what a searched text is (a pasted token, a code prefix, or text)
and hands it here. Whatever the database, the rows found are exactly those of the plain
conditions (``icontains``, ``startswith``): an index only narrows down the candidates.

Sort by app: each token keeps a copy of its app's name (``AccessToken.app_name``),
read here under a lock when a token is written (``stored_app_names``).
"""

import contextlib
import json

from django.db import connections, models
from django.db.models import Func, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat

# SQLite: the FTS5 trigram index of the tokens' owner and extra-field text (migration
# 0006, kept in step by triggers). It stores which rows hold each 3-character sequence.
SEARCH_TABLE = "tokens_accesstoken_search"
# Up to this many candidates, a text search reads them through the index (as many as the
# list counts exactly: tokens.pagination); beyond it, the text is common (see
# sqlite_text_search()).
SEARCH_CANDIDATES_LIMIT = 10_000
# PostgreSQL: a text longer than twice this is looked up by its start and end
# (postgresql_text_search()).
SEARCH_PATTERN_ENDS = 5
# Trigrams looked up per searched text: each costs a read of every row holding it, and
# a few already narrow a text down to its rows.
SEARCH_TRIGRAMS = 3
_search_index_present: dict[tuple[str, str], bool] = {}


def _has_search_index(alias: str) -> bool:
    """Whether the SQLite database has the FTS5 search table (its SQLite may lack FTS5)."""
    connection = connections[alias]
    key = (alias, str(connection.settings_dict["NAME"]))
    if key not in _search_index_present:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [SEARCH_TABLE])
            _search_index_present[key] = cursor.fetchone() is not None
    return _search_index_present[key]


@contextlib.contextmanager
def search_index_paused(connection, *, enabled: bool = True):
    """For a bulk load of tokens on SQLite: the search index's triggers are dropped for
    the load, then created again and the index rebuilt from the table in one pass,
    several times faster than a trigger per inserted row. Use it inside the load's
    transaction. Elsewhere (or when not ``enabled``) it does nothing."""
    if not enabled or connection.vendor != "sqlite" or not _has_search_index(connection.alias):
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
            [f"{SEARCH_TABLE}_%"],
        )
        triggers = cursor.fetchall()
        for name, _ in triggers:
            cursor.execute(f'DROP TRIGGER "{name}"')
    yield
    with connection.cursor() as cursor:
        for _, sql in triggers:
            cursor.execute(sql)
        cursor.execute(f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}) VALUES ('rebuild')")  # noqa: S608


def stored_app_names(app_model, app_ids, using: str) -> dict[int, str]:
    """{app id: name} as stored, for the tokens being written (``AccessToken.app_name``).

    On PostgreSQL the apps are read under a key-share lock, held until the transaction
    ends; a rename (``App.save``) locks its app for update first. So a token written while
    its app is renamed either waits for the rename and gets the new name, or is already
    there when the rename updates its app's tokens. (An ``App`` at hand may be older than
    the table: the OAuth endpoints take their client from a cache.) Tokens of one app
    being written at once do not wait for each other: key-share locks do not conflict.
    """
    ids = sorted({app_id for app_id in app_ids if app_id is not None})
    if not ids:
        return {}
    connection = connections[using]
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    placeholders = ", ".join(["%s"] * len(ids))
    table = app_model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, name FROM {table} WHERE id IN ({placeholders}){lock}",  # noqa: S608
            ids,
        )
        return dict(cursor.fetchall())


def code_prefix_search(queryset, prefix: str):
    """Tokens whose code starts with ``prefix``, case-sensitively, as codes are."""
    if connections[queryset.db].vendor != "sqlite" or not prefix:
        return queryset.filter(prefix__startswith=prefix)
    # SQLite's LIKE (what startswith becomes) is case-insensitive and, with Django's
    # ESCAPE clause, never uses an index: a range of the binary-collated index is.
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if ord(prefix[-1]) < 0x10FFFF else None
    if upper is None:
        return queryset.filter(prefix__startswith=prefix)
    return queryset.filter(prefix__gte=prefix, prefix__lt=upper)


def _ends_pattern(text: str) -> str:
    """A LIKE pattern of the start and the end of ``text``, in that order."""

    def escaped(part: str) -> str:
        return part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

    start, end = text[:SEARCH_PATTERN_ENDS], text[-SEARCH_PATTERN_ENDS:]
    return f"%{escaped(start)}%{escaped(end)}%"


def _upper_like(column: str, pattern: str) -> Q:
    """``UPPER(column::text) LIKE UPPER(pattern)``: the expression of the trigram indexes."""
    like = Func(
        Cast(column, models.TextField()),
        Value(pattern),
        template="UPPER(%(expressions)s)",
        arg_joiner=") LIKE UPPER(",
        output_field=models.BooleanField(),
    )
    return Q(like)


def _rarity(trigram: str) -> int:
    return sum(char.isdigit() for char in trigram)


def _fts_match(texts: list[str]) -> str | None:
    """An FTS5 query for rows holding any of ``texts`` (each as a few of its trigrams,
    all of them), or None where the index cannot help (a text under 3 characters)."""
    alternatives = []
    for text in dict.fromkeys(texts):
        if len(text) < 3 or "\x00" in text:
            return None
        # Non-overlapping trigrams say more about the text than neighbours do; of those,
        # the ones with digits are usually held by fewer rows than words are ("424"
        # rather than "xam" of every "example"), then the first ones.
        starts = list(range(0, len(text) - 2, 3))
        if starts[-1] != len(text) - 3:
            starts.append(len(text) - 3)
        chosen = sorted(starts, key=lambda i: -_rarity(text[i : i + 3]))[:SEARCH_TRIGRAMS]
        trigrams = dict.fromkeys(text[i : i + 3].lower() for i in sorted(chosen))
        phrases = " AND ".join('"{}"'.format(t.replace('"', '""')) for t in trigrams)
        alternatives.append(f"({phrases})")
    return " OR ".join(alternatives)


def text_search(queryset, query: str, *, app_ids: list[int]):
    """The tokens of ``queryset`` whose owner or extra fields hold ``query`` anywhere,
    case-insensitively (``icontains``), or whose app is one of ``app_ids`` (the apps
    whose name holds it, looked up first in their own small table, so that the whole
    condition is on the token table, where its indexes can serve it)."""
    # Extra fields are matched in their stored JSON text, where quotes and backslashes
    # are escaped and, on SQLite, non-ASCII letters are \uXXXX: look for those forms too.
    texts = list(
        dict.fromkeys([query, json.dumps(query)[1:-1], json.dumps(query, ensure_ascii=False)[1:-1]])
    )
    vendor = connections[queryset.db].vendor
    in_text = Q(owner__icontains=query)
    for text in texts:
        in_extra = Q(extra_fields__icontains=text)
        if vendor == "postgresql" and text not in ("[", "]", "[]"):
            # Most tokens have no extra fields: comparing with '[]' is cheap, turning
            # each jsonb into text to match it is not (half of a common word's count).
            in_extra = ~Q(extra_fields=[]) & in_extra  # checked first
        in_text |= in_extra
    if app_ids:
        # Tokens of a matching app are many: the list's sort index finds a page of
        # them at once, with no text index needed.
        return queryset.filter(in_text | Q(app_id__in=app_ids))
    if vendor == "sqlite":
        return sqlite_text_search(queryset, query, texts, in_text)
    if vendor == "postgresql":
        return postgresql_text_search(queryset, query, texts, in_text)
    return queryset.filter(in_text)


def sqlite_text_search(queryset, query: str, texts: list[str], in_text: Q):
    """The owner/extra-field search on SQLite, through the FTS5 trigram index.

    The index finds candidates (rows holding all of a few trigrams of the text); the
    ``icontains`` condition is then checked on them as before, so the rows found are
    exactly those of a plain scan. A text found in few rows (at most
    ``SEARCH_CANDIDATES_LIMIT``) is read through the index; a common one is not: the
    list's sort index meets matching rows at once, while SQLite would fetch and sort
    every candidate.
    """
    match = _fts_match([query, *texts])
    if match is None or not _has_search_index(queryset.db):
        return queryset.filter(in_text)
    index_query = f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH %s"  # noqa: S608
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM ({index_query} LIMIT %s)",  # noqa: S608
            [match, SEARCH_CANDIDATES_LIMIT + 1],
        )
        (candidates,) = cursor.fetchone()
    if candidates > SEARCH_CANDIDATES_LIMIT:
        return queryset.filter(in_text)
    # The table name is a constant; the text is a parameter.
    return queryset.filter(in_text, pk__in=RawSQL(index_query, [match]))  # noqa: S611


def postgresql_text_search(queryset, query: str, texts: list[str], in_text: Q):
    """The owner/extra-field search on PostgreSQL, through the pg_trgm indexes (0004).

    For a LIKE pattern, pg_trgm reads the rows of every trigram of its text, and a
    long text holds common ones ("example", "@acme") that cost tens of milliseconds.
    So a long text asks the index for its start and end only (``%START%END%``: any row
    holding the text holds them, in that order), then ``icontains`` checks those
    candidates, over an expression the planner cannot read from the index too.
    """
    if len(query) <= 2 * SEARCH_PATTERN_ENDS:
        return queryset.filter(in_text)
    candidates = _upper_like("owner", _ends_pattern(query))
    check = Q(owner_text__icontains=query)
    for text in texts:
        candidates |= _upper_like("extra_fields", _ends_pattern(text))
        check |= Q(extra_text__icontains=text)
    return queryset.alias(
        owner_text=Concat(
            Cast("owner", models.TextField()), Value(""), output_field=models.TextField()
        ),
        extra_text=Concat(
            Cast("extra_fields", models.TextField()),
            Value(""),
            output_field=models.TextField(),
        ),
    ).filter(candidates, check)
