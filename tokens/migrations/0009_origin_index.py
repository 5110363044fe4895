"""An index for the list's origin filter (portal or OAuth tokens), newest first."""

from django.conf import settings
from django.db import migrations, models


def analyze(apps, schema_editor):
    # Statistics for the new index at once, as 0006–0008 do (SQLite's planner otherwise
    # ignores what it knows nothing of).
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("ANALYZE tokens_accesstoken")


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0008_app_name_sort"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="accesstoken",
            index=models.Index(
                fields=["origin", "-created_at", "-id"], name="token_origin_created_idx"
            ),
        ),
        migrations.RunPython(analyze, migrations.RunPython.noop),
    ]
