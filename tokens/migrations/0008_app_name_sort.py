"""Sort by app from an index: the app's name copied onto each token, indexed with the id.

The column is nullable with no default, so that SQLite adds it with ``ALTER TABLE ADD
COLUMN`` (instant) instead of rebuilding the table, which would drop the search index's
triggers of 0006 and take minutes at a million tokens. It is then filled from the apps in
one UPDATE (the search triggers fire only on owner and extra fields), and indexed.
"""

from django.db import migrations, models

BACKFILL_SQL = (
    "UPDATE tokens_accesstoken SET app_name = "
    "(SELECT name FROM tokens_app WHERE tokens_app.id = tokens_accesstoken.app_id)"
)


def analyze(apps, schema_editor):
    # Statistics for the new column and index at once (as 0006 and 0007 do for SQLite,
    # whose planner otherwise ignores what it knows nothing of).
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("ANALYZE tokens_accesstoken")


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0007_status_in_sort_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="accesstoken",
            name="app_name",
            field=models.CharField(editable=False, max_length=100, null=True),
        ),
        migrations.RunSQL(BACKFILL_SQL, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(fields=["app_name", "id"], name="token_app_name_id_idx"),
        ),
        migrations.RunPython(analyze, migrations.RunPython.noop),
    ]
