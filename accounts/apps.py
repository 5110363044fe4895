from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Staff accounts: throttled login, TOTP two-factor authentication, recovery codes,
    and the sessions an administrator can end."""

    name = "accounts"
    verbose_name = "Accounts and two-factor authentication"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import signals  # noqa: F401  (session tracking, login audit)
