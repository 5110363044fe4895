"""Create the two staff groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADMINISTRATORS = "Portal administrators"
SUPPORT = "Support staff"

MODELS = ["accesstoken", "api", "plan", "app", "subscription", "tokenapi", "auditevent"]


def forwards(apps, schema_editor):
    # Permissions are normally created after migrations; this one needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    tokens_perms = Permission.objects.filter(content_type__app_label="tokens")

    admins, _ = Group.objects.get_or_create(name=ADMINISTRATORS)
    admins.permissions.set(
        tokens_perms.filter(content_type__model__in=MODELS).exclude(
            codename__in=[
                "delete_accesstoken",
                "delete_auditevent",
                "change_auditevent",
                "add_auditevent",
            ]
        )
    )
    support, _ = Group.objects.get_or_create(name=SUPPORT)
    support.permissions.set(
        tokens_perms.filter(codename__startswith="view_")
        | tokens_perms.filter(codename="revoke_accesstoken")
    )


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[ADMINISTRATORS, SUPPORT]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0002_plan_belongs_to_api"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
