"""Indexes for every sort of the Access Tokens list, and (PostgreSQL) for its quick search.

The quick search matches owner and extra-field text anywhere (``icontains``): on
PostgreSQL trigram GIN indexes (pg_trgm) over the same expressions Django's
``icontains`` compares, ``UPPER(col::text)``, turn that from a scan of every token into
an index lookup. The extension is created when the database user may; otherwise the
migration goes on without these two indexes (the search still works, by scanning).
SQLite has no such index: there the search scans (see bench/RESULTS.md).
"""

from django.conf import settings
from django.db import migrations, models

TRIGRAM_INDEXES = {
    "token_owner_trgm_idx": 'UPPER(("owner")::text)',
    "token_extra_trgm_idx": 'UPPER(("extra_fields")::text)',
}


def add_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            cursor.execute("SAVEPOINT tp_trgm")
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except Exception:  # no right to create extensions: go on without the indexes
                cursor.execute("ROLLBACK TO SAVEPOINT tp_trgm")
                return
            cursor.execute("RELEASE SAVEPOINT tp_trgm")
        for name, expression in TRIGRAM_INDEXES.items():
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON tokens_accesstoken "
                f"USING gin ({expression} gin_trgm_ops)"
            )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in TRIGRAM_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0003_groups"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(add_trigram_indexes, drop_trigram_indexes),
        migrations.RemoveIndex(
            model_name="accesstoken",
            name="token_owner_idx",
        ),
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(fields=["owner", "id"], name="token_owner_id_idx"),
        ),
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(fields=["created_at", "id"], name="token_created_id_idx"),
        ),
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(fields=["expires_at", "id"], name="token_expires_id_idx"),
        ),
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(fields=["last_used_at", "id"], name="token_last_used_id_idx"),
        ),
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(fields=["prefix", "id"], name="token_prefix_id_idx"),
        ),
    ]
