"""The database holds "the plan belongs to that API" for token links and subscriptions.

PostgreSQL: a composite foreign key (plan_id, api_id) → plan (id, api_id).
SQLite cannot add a constraint to an existing table, so triggers refuse the same rows.
"""

from django.db import migrations

TABLES = ["tokens_tokenapi", "tokens_subscription"]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {table}_plan_of_api "
                f"FOREIGN KEY (plan_id, api_id) REFERENCES tokens_plan (id, api_id) "
                f"DEFERRABLE INITIALLY DEFERRED"
            )
        elif vendor == "sqlite":
            for event in ("INSERT", "UPDATE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_plan_of_api_{event.lower()} "
                    f"BEFORE {event} ON {table} "
                    f"WHEN (SELECT api_id FROM tokens_plan WHERE id = NEW.plan_id) "
                    f"IS NOT NEW.api_id "
                    f"BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {table}_plan_of_api'); END"
                )


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_plan_of_api")
        elif vendor == "sqlite":
            for event in ("insert", "update"):
                schema_editor.execute(f"DROP TRIGGER {table}_plan_of_api_{event}")


class Migration(migrations.Migration):
    dependencies = [("tokens", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
