"""created_at and expires_at are indexed with the id (0004): their single-column indexes only
cost writes and bulk loads."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0004_list_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="accesstoken",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="accesstoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
