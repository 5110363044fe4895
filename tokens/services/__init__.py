"""Every write to tokens goes through here: views, admin, OAuth endpoints and commands.

Each service runs in one transaction and writes the audit event of what it did. By
concern: a token's life (``lifecycle``: create, edit, revoke), the client apps and what
they do through OAuth (``clients``), bulk revocation (``bulk``), and the e-mails about
tokens about to expire (``notices``). Callers use the names below:
``from tokens import services; services.token_revoke(...)``.
"""

from tokens.errors import TokenServiceError
from tokens.services.bulk import BulkRevokeResult, portal_revoke_skip_reason, token_revoke_many
from tokens.services.clients import (
    app_create,
    app_regenerate_secret,
    token_issue_for_client,
    token_revoke_by_client,
)
from tokens.services.lifecycle import (
    Actor,
    IssuedToken,
    RevokeChannel,
    StaleTokenEdit,
    TokenNotEditable,
    TokenNotRevocable,
    actor_label,
    token_create,
    token_revoke,
    token_update,
)
from tokens.services.notices import (
    NoticeRun,
    notification_settings_update,
    tokens_notify_expiring,
)

__all__ = [
    "Actor",
    "BulkRevokeResult",
    "IssuedToken",
    "NoticeRun",
    "RevokeChannel",
    "StaleTokenEdit",
    "TokenNotEditable",
    "TokenNotRevocable",
    "TokenServiceError",
    "actor_label",
    "app_create",
    "app_regenerate_secret",
    "notification_settings_update",
    "portal_revoke_skip_reason",
    "token_create",
    "token_issue_for_client",
    "token_revoke",
    "token_revoke_by_client",
    "token_revoke_many",
    "token_update",
    "tokens_notify_expiring",
]
