"""The two staff groups and their permissions, defined once.

Used by the data migration that creates them and by a post_migrate handler that puts
them back after a test database flush (``TransactionTestCase``/live-server tests).
"""

ADMINISTRATORS = "Portal administrators"
SUPPORT = "Support staff"

_TOKENS_MODELS = ["accesstoken", "api", "plan", "app", "subscription", "tokenapi", "auditevent"]
_NEVER = {
    # Tokens are revoked, never deleted; the audit trail is written only by services.
    "delete_accesstoken",
    "add_auditevent",
    "change_auditevent",
    "delete_auditevent",
}


def _codenames_for(group: str) -> set[str]:
    if group == ADMINISTRATORS:
        every = {
            f"{action}_{model}"
            for model in _TOKENS_MODELS
            for action in ("add", "change", "delete", "view")
        }
        return (every - _NEVER) | {"revoke_accesstoken"}
    return {f"view_{model}" for model in _TOKENS_MODELS} | {"revoke_accesstoken"}


def ensure_groups(Group, Permission) -> None:
    """Create or update both groups; takes model classes so a migration can pass its own."""
    for name in (ADMINISTRATORS, SUPPORT):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.filter(
                content_type__app_label="tokens", codename__in=_codenames_for(name)
            )
        )
