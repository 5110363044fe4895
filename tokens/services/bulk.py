"""Bulk revocation: Django admin's "Revoke selected tokens" (each token as the portal's
REVOKE would, in one transaction), and the batches of the list's "Revoke selected" and
an app's "Revoke all tokens" (``revoke_batch``: a few hundred tokens per statement,
run by ``tokens.jobs``)."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.logs import mask_secrets, security_log
from tokens.gateway import cache
from tokens.models import AccessToken, AuditAction, AuditEvent, Job, TokenOrigin, TokenStatus
from tokens.services.lifecycle import (
    Actor,
    RevokeChannel,
    RevokeReasonRequired,
    TokenNotRevocable,
    _actor_user,
    actor_label,
    revoke_reason_required,
    revoke_refusal,
    token_revoke,
)

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
    refusal = revoke_refusal(token, RevokeChannel.PORTAL, now or timezone.now())
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


# Why a batch leaves a token alone, as the confirm page and the job's summary count them.
class Skip:
    ALREADY_REVOKED = "already revoked"
    OAUTH = "OAuth-issued (revoked only by its client, RFC 7009)"
    EXPIRED = "expired (the gateway already refuses it)"


_SKIP_OF_REFUSAL = {TokenStatus.EXPIRED: Skip.EXPIRED, TokenOrigin.OAUTH: Skip.OAUTH}


def batch_skip_reason(token: AccessToken, channel: str, now: datetime) -> str | None:
    """Why ``revoke_batch`` on ``channel`` leaves ``token`` alone (a ``Skip``), or None.

    The rule of ``token_revoke`` (``revoke_refusal``): the portal channel revokes Active
    portal tokens; the incident channel (an app's leaked secret) Active tokens of any
    origin. ``count_batch_outcome`` counts in the same order: revoked, expired, OAuth."""
    if token.revoked_at is not None:
        return Skip.ALREADY_REVOKED
    refusal = revoke_refusal(token, channel, now)
    return None if refusal is None else _SKIP_OF_REFUSAL[refusal]


def count_batch_outcome(tokens, channel: str, now: datetime | None = None) -> tuple[int, dict]:
    """How many of the queryset ``tokens`` ``revoke_batch`` would revoke, and the rest
    by ``Skip``: counted in the database (a few COUNTs, whatever the number of tokens)."""
    now = now or timezone.now()
    tokens = tokens.order_by()
    revoked = tokens.revoked().count()
    expired = tokens.expired(now).count()
    active = tokens.active(now)
    oauth = (
        active.exclude(origin=TokenOrigin.PORTAL).count() if channel == RevokeChannel.PORTAL else 0
    )
    will = active.count() - oauth
    skipped = {Skip.ALREADY_REVOKED: revoked, Skip.EXPIRED: expired, Skip.OAUTH: oauth}
    return will, {why: n for why, n in skipped.items() if n}


@dataclass(frozen=True)
class BatchResult:
    revoked: int
    skipped: Counter  # Skip → count


def revoke_batch(
    *,
    token_ids: list[int],
    actor: Actor | str | None,
    reason: str = "",
    channel: str = RevokeChannel.PORTAL,
    remote_addr: str | None = None,
    job: Job | None = None,
) -> BatchResult:
    """Revoke the tokens ``token_ids`` that ``channel`` allows, as ``token_revoke`` would
    each (audit event, gateway cache purge after commit, security log line), in set
    statements: one UPDATE, one INSERT of the audit events.

    Runs in the caller's transaction (``transaction.atomic`` here if none): the rows are
    locked first, so a concurrent revoke of one of them (a REVOKE, an RFC 7009 call)
    either finished before (the token is skipped as already revoked) or waits and then
    changes nothing. Tokens already revoked are purged again, as ``token_revoke`` does:
    running a batch again is how a failed purge is retried.
    """
    if revoke_reason_required(channel) and not reason.strip():
        raise RevokeReasonRequired("Say why these tokens are revoked: a reason is required.")
    with transaction.atomic():
        now = timezone.now()
        label = actor_label(actor)
        user = _actor_user(actor)
        reason = mask_secrets(reason)
        tokens = list(
            AccessToken.objects.select_for_update()
            .filter(pk__in=token_ids)
            .only("public_id", "digest", "origin", "revoked_at", "expires_at", "version")
            .order_by("pk")
        )
        skipped: Counter = Counter()
        chosen = []
        for token in tokens:
            why = batch_skip_reason(token, channel, now)
            if why == Skip.ALREADY_REVOKED:
                cache.purge_token_after_commit(token.digest)
            if why is None:
                chosen.append(token)
            else:
                skipped[why] += 1
        if chosen:
            AccessToken.objects.filter(pk__in=[t.pk for t in chosen]).update(
                revoked_at=now,
                revoked_by=label,
                revocation_reason=reason,
                version=F("version") + 1,
            )
            changes = {"revoked_at": [None, now.isoformat()]}
            if reason:
                changes["revocation_reason"] = [None, reason]
            AuditEvent.objects.bulk_create(
                AuditEvent(
                    token_id=token.pk,
                    action=AuditAction.REVOKED,
                    actor=user,
                    actor_label=label,
                    changes=changes,
                    token_version=token.version + 1,
                    created_at=now,
                    remote_addr=remote_addr or None,
                    job=job,
                )
                for token in chosen
            )
            for token in chosen:
                cache.purge_token_after_commit(token.digest)
                token.revoked_at = now
                security_log(
                    "authn_token_revoked",
                    actor=actor,
                    token=token,
                    remote_addr=remote_addr,
                    channel=channel,
                    job=str(job.public_id) if job else None,
                    on_commit=True,
                )
        return BatchResult(revoked=len(chosen), skipped=skipped)
