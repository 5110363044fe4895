"""Every write to tokens goes through here: views, admin, OAuth endpoints and commands.

Each service runs in one transaction and writes the audit event of what it did. By
concern: a token's life (``lifecycle``: create, edit, revoke), the client apps and what
they do through OAuth (``clients``), bulk revocation (``bulk``), and the e-mails about
tokens about to expire (``notices``). Callers use the names below:
``from tokens import services; services.token_revoke(...)``.
"""

from tokens.errors import TokenServiceError
from tokens.services.bulk import (
    BatchResult,
    BulkRevokeResult,
    Skip,
    count_batch_outcome,
    portal_revoke_skip_reason,
    revoke_batch,
    token_revoke_many,
)
from tokens.services.clients import (
    app_create,
    app_regenerate_secret,
    token_issue_for_client,
    token_revoke_by_client,
)
from tokens.services.leaks import LeakReportOutcome, ReportedSecret, report_leaked
from tokens.services.lifecycle import (
    Actor,
    IssuedToken,
    RevokeChannel,
    RevokeReasonRequired,
    StaleTokenEdit,
    TokenNotEditable,
    TokenNotRevocable,
    actor_label,
    revoke_reason_required,
    token_create,
    token_revoke,
    token_update,
)
from tokens.services.notices import (
    NoticeRun,
    notification_settings_update,
    tokens_notify_expiring,
)
from tokens.services.rotation import (
    RotatedButNotPurged,
    TokenNotRotatable,
    can_be_rotated,
    finish_due_rotations,
    rotation_refusal,
    token_rotate,
)

__all__ = [
    "Actor",
    "BatchResult",
    "Skip",
    "count_batch_outcome",
    "revoke_batch",
    "BulkRevokeResult",
    "IssuedToken",
    "NoticeRun",
    "RevokeChannel",
    "RevokeReasonRequired",
    "RotatedButNotPurged",
    "StaleTokenEdit",
    "TokenNotEditable",
    "TokenNotRevocable",
    "TokenNotRotatable",
    "TokenServiceError",
    "actor_label",
    "app_create",
    "app_regenerate_secret",
    "can_be_rotated",
    "finish_due_rotations",
    "notification_settings_update",
    "portal_revoke_skip_reason",
    "revoke_reason_required",
    "rotation_refusal",
    "token_create",
    "token_issue_for_client",
    "token_revoke",
    "token_revoke_by_client",
    "token_revoke_many",
    "token_rotate",
    "token_update",
    "LeakReportOutcome",
    "ReportedSecret",
    "report_leaked",
    "tokens_notify_expiring",
]
