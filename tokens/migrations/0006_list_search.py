"""The list at a million tokens: an index for status "revoked", and (SQLite) an FTS5
trigram index for the quick search.

- ``revoked_at`` loses its single-column index: it indexed the NULL of every unrevoked
  token, and SQLite's planner then read "expired" (``revoked_at IS NULL AND …``) through
  it, fetching and sorting most of the table. A partial index of the revoked tokens only,
  in the list's order, serves status "revoked" and its count.
- SQLite: ``tokens_accesstoken_search``, an external-content FTS5 table over the owner and
  the extra fields' stored JSON text with the ``trigram`` tokenizer (SQLite 3.34+), kept
  in step with ``tokens_accesstoken`` by three triggers (an update of any other column,
  such as "last used", does not touch it). ``detail=none`` stores only which rows hold
  each trigram, not where: a third of the size and time of a full index, and enough
  for candidates that ``AccessTokenQuerySet.search`` checks again with ``icontains``.
  PostgreSQL keeps its pg_trgm indexes (0004). A SQLite without FTS5 goes on without
  the table, and the search scans.

Django rebuilds a SQLite table for many field changes (``_remake_table``), which drops
its triggers: a later migration that does so on ``tokens_accesstoken`` must create them
again (``tests/test_views_list_search.py`` checks that they exist).
"""

from django.db import migrations, models, transaction
from django.db.utils import OperationalError

TABLE = "tokens_accesstoken_search"

CREATE_SQL = [
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5(owner, extra_fields, "
    "content='tokens_accesstoken', content_rowid='id', tokenize='trigram', detail='none')",
    f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON tokens_accesstoken BEGIN "
    f"INSERT INTO {TABLE}(rowid, owner, extra_fields) "
    "VALUES (new.id, new.owner, new.extra_fields); END",
    f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON tokens_accesstoken BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, owner, extra_fields) "
    "VALUES ('delete', old.id, old.owner, old.extra_fields); END",
    f"CREATE TRIGGER {TABLE}_update AFTER UPDATE OF owner, extra_fields "
    f"ON tokens_accesstoken BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, owner, extra_fields) "
    "VALUES ('delete', old.id, old.owner, old.extra_fields); "
    f"INSERT INTO {TABLE}(rowid, owner, extra_fields) "
    "VALUES (new.id, new.owner, new.extra_fields); END",
    f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')",
]

DROP_SQL = [
    f"DROP TRIGGER IF EXISTS {TABLE}_insert",
    f"DROP TRIGGER IF EXISTS {TABLE}_delete",
    f"DROP TRIGGER IF EXISTS {TABLE}_update",
    f"DROP TABLE IF EXISTS {TABLE}",
]


def create_search_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            for sql in CREATE_SQL:
                cursor.execute(sql)
    except OperationalError:  # no FTS5 or no trigram tokenizer: the search scans
        pass
    # The AlterField above rebuilt the table, which dropped its planner statistics:
    # without them SQLite reads a big list's pages through the app index and sorts them
    # all (seconds at a million tokens). A second or so per million rows.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tokens_accesstoken")


def drop_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            for sql in DROP_SQL:
                cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0005_drop_single_column_time_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="accesstoken",
            name="revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(
                condition=models.Q(("revoked_at__isnull", False)),
                fields=["created_at", "id"],
                name="token_revoked_created_idx",
            ),
        ),
        migrations.RunPython(create_search_index, drop_search_index),
    ]
