"""Create the two staff groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from tokens.groups import ADMINISTRATORS, SUPPORT, ensure_groups


def forwards(apps, schema_editor):
    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    ensure_groups(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[ADMINISTRATORS, SUPPORT]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0002_plan_belongs_to_api"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
