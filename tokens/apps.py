from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_groups(sender, **kwargs):
    from django.contrib.auth.models import Group, Permission

    from tokens.groups import ensure_groups

    ensure_groups(Group, Permission)


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Access tokens"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # After a flush (live-server tests) the data migration's groups are gone; put them back.
        post_migrate.connect(_ensure_groups, sender=self, dispatch_uid="tokens.ensure_groups")
        import portal.deployment  # noqa: F401 (registers the deployment checks)
