"""Bulk revocation (Django admin's "Revoke selected tokens"): each token as the portal's
REVOKE would, in one transaction."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tokens.gateway import cache
from tokens.models import AccessToken, TokenOrigin, TokenStatus
from tokens.services.lifecycle import Actor, RevokeChannel, TokenNotRevocable, token_revoke

# Why a token is left alone, as the admin lists it (AccessToken.portal_revoke_refusal).
_SKIPPED = {
    TokenOrigin.OAUTH: "Issued by the OAuth flow: only its client can revoke it, through the "
    "revocation endpoint (RFC 7009).",
    TokenStatus.EXPIRED: "Expired: the gateway already refuses it, so it needs no revoking.",
}


@dataclass(frozen=True)
class BulkRevokeResult:
    revoked: list[AccessToken]
    skipped: list[tuple[AccessToken, str]]  # each with why it was not revoked


def portal_revoke_skip_reason(token: AccessToken, *, now: datetime | None = None) -> str | None:
    """Why the portal channel would leave ``token`` alone; None when it would revoke it.

    The same refusals as ``token_revoke(channel=PORTAL)``, in the order that tells a
    person the most: a revoked token is "already revoked" whatever its origin.
    """
    if token.revoked_at is not None:
        return "Already revoked."
    refusal = token.portal_revoke_refusal(now)
    return None if refusal is None else _SKIPPED[refusal]


@transaction.atomic
def token_revoke_many(
    *,
    tokens: Iterable[AccessToken],
    actor: Actor | None,
    reason: str = "",
    remote_addr: str | None = None,
) -> BulkRevokeResult:
    """Revoke each token as the portal's REVOKE does; skip (and say why) those it refuses.

    One transaction: either every revocable token is revoked, or none is. Each revoked
    token gets its own audit event and cache purge (through ``token_revoke``); tokens
    already revoked are purged again. After the commit every purge is attempted; if any
    failed, ``CachePurgeFailed`` says so (the revocations stand: running it again purges).
    """
    revoked, skipped = [], []
    now = timezone.now()
    for token in tokens:
        why = portal_revoke_skip_reason(token, now=now)
        if token.revoked_at is not None:
            # Purged again: running the action again is how a failed purge is retried.
            cache.purge_token_after_commit(token.digest)
        if why is None:
            try:
                if token_revoke(
                    token=token,
                    actor=actor,
                    reason=reason,
                    channel=RevokeChannel.PORTAL,
                    remote_addr=remote_addr,
                ):
                    revoked.append(token)
                    continue
                why = "Already revoked."  # by someone else, a moment ago
            except TokenNotRevocable as exc:  # it expired a moment ago
                why = exc.message
        skipped.append((token, why))
    return BulkRevokeResult(revoked=revoked, skipped=skipped)
