"""ROTATE: a portal token replaced by a new one with the same app, owner, extra fields,
APIs and plans; the old one keeps working for a grace period, then stops.

The old token stops by its expiry: ``token_rotate`` sets its ``expires_at`` to the stop
time, and every gateway check compares that at check time (cached answers carry it and
are never served past it), so it stops on the second, whatever runs or does not run
later. Then ``finish_due_rotations`` records it as revoked, reason "rotated": a task
deferred to the stop time calls it, and the job worker calls it periodically too, so a
lost task is caught.
"""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, router, transaction
from django.db.models import F
from django.utils import timezone
from django_tasks import task

from portal import aftercommit
from tokens import search
from tokens.errors import TokenServiceError
from tokens.gateway.cache import CachePurgeFailed
from tokens.models import (
    AccessToken,
    App,
    AuditAction,
    AuditEvent,
    TokenOrigin,
    TokenRotation,
    TokenStatus,
)
from tokens.services.lifecycle import (
    Actor,
    IssuedToken,
    RevokeChannel,
    _record_change,
    actor_label,
    token_create,
    token_revoke,
)

logger = logging.getLogger(__name__)

ROTATED_REASON = "rotated"


class TokenNotRotatable(TokenServiceError):
    """Refused: the token is not an active portal token, or was rotated already
    (``replacement`` is then the token that replaced it)."""

    def __init__(self, message: str, *, replacement: AccessToken | None = None):
        super().__init__(message)
        self.replacement = replacement


class RotatedButNotPurged(TokenServiceError):
    """The rotation is committed (``issued`` holds the new token and its secret, to be
    shown once), but the gateways' cache could not be told that the old token changed."""

    def __init__(self, message: str, *, issued: IssuedToken):
        super().__init__(message)
        self.issued = issued


def rotation_refusal(token: AccessToken, now: datetime | None = None) -> str | None:
    """Why ``token`` cannot be rotated, in words for the person who asked; None if it can."""
    replaced = TokenRotation.objects.filter(old=token).select_related("new").first()
    if replaced is not None:
        return f"This token was already rotated: it is replaced by {replaced.new.masked_code}."
    if token.origin != TokenOrigin.PORTAL:
        return (
            "This token was issued by the OAuth flow; its client gets a new one through the "
            "token endpoint. Only tokens created in the portal can be rotated here."
        )
    status = token.status_at(now or timezone.now())
    if status != TokenStatus.ACTIVE:
        return f"This token is {status.label.lower()}; only an active token can be rotated."
    if not token.app.is_active:
        return (
            f"The app {token.app.name} is deactivated: a new token of it would not work "
            "either. Only tokens of an active app can be rotated."
        )
    return None


def can_be_rotated(token: AccessToken) -> bool:
    return rotation_refusal(token) is None


def token_rotate(
    *,
    token: AccessToken,
    grace: timedelta,
    actor: Actor | None,
    remote_addr: str | None = None,
) -> IssuedToken:
    """Replace ``token`` by a new token; the old one keeps working for ``grace``.

    One transaction. Refuses (``TokenNotRotatable``) a token that is not an active
    portal token or was rotated already: of two rotations at once, one makes the new
    token and the other is refused. With no grace the old token is revoked at once
    (reason "rotated"); otherwise it stops at ``now + grace`` (or its own expiry, if
    sooner). Raises ``RotatedButNotPurged``, which carries the new token and its
    secret, when the rotation committed but the gateways' cache could not be purged.
    """
    if grace < timedelta(0):
        raise TokenServiceError("The time the old token keeps working cannot be negative.")
    issued = None
    try:
        with transaction.atomic():
            issued = _rotate(token=token, grace=grace, actor=actor, remote_addr=remote_addr)
    except CachePurgeFailed as exc:
        if issued is None:  # not from this rotation's commit: nothing was rotated
            raise
        raise RotatedButNotPurged(exc.message, issued=issued) from exc
    return issued


def _rotate(*, token, grace, actor, remote_addr) -> IssuedToken:
    now = timezone.now()
    # Locks in the order a rename of the app takes them (App.save: the app, then its
    # tokens), or the two could deadlock: first the app's key-share lock that writing
    # the new token takes anyway (search.stored_app_names), then the token's row.
    search.stored_app_names(App, [token.app_id], router.db_for_write(AccessToken))
    # The row lock orders this rotation after any change to the token under way (a
    # revoke, an edit, another rotation), and sees its outcome. The token's row only:
    # locking its app for update would hold up every other token of the app meanwhile.
    locked = AccessToken.objects.select_for_update(of=("self",)).select_related("app")
    old = locked.get(pk=token.pk)
    refusal = rotation_refusal(old, now)
    if refusal is not None:
        raise TokenNotRotatable(refusal, replacement=_replacement(old))
    plans = [link.plan for link in old.api_links.select_related("plan__api")]
    label = actor_label(actor)
    stops_at = now + grace
    if old.expires_at is not None:
        stops_at = min(stops_at, old.expires_at)
    try:
        with transaction.atomic():  # a savepoint: the loser of a race leaves no new token
            issued = token_create(
                app=old.app,
                owner=old.owner,
                plans=plans,
                extra_fields=old.extra_fields,
                expires_at=old.expires_at,
                actor=actor,
                remote_addr=remote_addr,
            )
            TokenRotation.objects.create(
                old=old, new=issued.token, old_stops_at=stops_at, actor_label=label
            )
    except IntegrityError:
        # The one-to-one on the old token: another rotation of it committed first.
        replacement = _replacement(old)
        raise TokenNotRotatable(
            "This token was rotated by someone else a moment ago"
            + (f": it is replaced by {replacement.masked_code}." if replacement else ".")
            + " No second new token was made.",
            replacement=replacement,
        ) from None
    new = issued.token
    # The new token's "created" entry says where it came from.
    created = AuditEvent.objects.get(token=new, action=AuditAction.CREATED)
    created.changes["rotated_from"] = [None, old.masked_code]
    created.save(update_fields=["changes"])

    changes = {"rotated_to": [None, new.masked_code]}
    if grace:
        if old.expires_at != stops_at:
            changes["expires_at"] = [
                old.expires_at.isoformat() if old.expires_at else None,
                stops_at.isoformat(),
            ]
        old.expires_at = stops_at
        old.version = F("version") + 1
        old.save(update_fields=["expires_at", "version"])
        old.refresh_from_db(fields=["version"])
    _record_change(
        token=old,
        action=AuditAction.ROTATED,
        actor=actor,
        changes=changes,
        remote_addr=remote_addr,
        event="authn_token_rotated",
        new_token=str(new.public_id),
        old_stops_at=stops_at.isoformat(),
    )
    if not grace:
        token_revoke(
            token=old,
            actor=actor,
            reason=ROTATED_REASON,
            channel=RevokeChannel.PORTAL,
            remote_addr=remote_addr,
        )
        TokenRotation.objects.filter(old=old).update(old_stops_at=old.revoked_at)
    else:
        aftercommit.run(lambda: _schedule_finish(stops_at))
    token.refresh_from_db()
    return issued


def _replacement(token: AccessToken) -> AccessToken | None:
    rotation = TokenRotation.objects.filter(old=token).select_related("new").first()
    return rotation.new if rotation is not None else None


def _schedule_finish(at: datetime) -> None:
    try:
        finish_rotations.using(run_after=at).enqueue()
    except Exception:
        # The job worker's periodic call of finish_due_rotations catches it; until then
        # the gateways refuse the old token anyway (expired).
        logger.exception("Could not schedule the end of a rotation at %s", at.isoformat())


def finish_due_rotations(now: datetime | None = None) -> int:
    """Record every rotated-out token whose stop time has passed as revoked, reason
    "rotated" (at its stop time, by whoever rotated it); how many it revoked.

    Idempotent: a token already revoked (by this, or by someone's REVOKE during the
    grace period) is left alone.
    """
    now = now or timezone.now()
    due = TokenRotation.objects.filter(
        old_stops_at__lte=now, old__revoked_at__isnull=True
    ).values_list("old_id", "old_stops_at", "actor_label")
    finished = 0
    for old_id, stops_at, label in due:
        try:
            finished += _finish(old_id, stops_at, label)
        except CachePurgeFailed as exc:
            # Revoked all the same; the gateways refuse it already (it expired at the
            # stop time, and cached answers are never served past that).
            logger.warning("A rotated-out token is revoked, but: %s", exc.message)
            finished += 1
    return finished


def _finish(old_id: int, stops_at: datetime, label: str) -> int:
    with transaction.atomic():
        # The conditional update is the lock: of concurrent callers, one revokes it.
        changed = AccessToken.objects.filter(pk=old_id, revoked_at__isnull=True).update(
            revoked_at=stops_at,
            revoked_by=label,
            revocation_reason=ROTATED_REASON,
            version=F("version") + 1,
        )
        if not changed:
            return 0
        old = AccessToken.objects.get(pk=old_id)
        _record_change(
            token=old,
            action=AuditAction.REVOKED,
            actor=label,
            changes={
                "revoked_at": [None, stops_at.isoformat()],
                "revocation_reason": [None, ROTATED_REASON],
            },
            remote_addr=None,
            event="authn_token_revoked",
            channel="rotation",
        )
    return 1


@task()
def finish_rotations() -> int:
    """The deferred end of a rotation (enqueued for its stop time)."""
    return finish_due_rotations()
