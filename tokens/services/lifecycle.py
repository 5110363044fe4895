"""A token's life through the portal's rules: created, edited, revoked.

Each service runs in one transaction and writes the audit event of what it did.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal import timefmt
from portal.logs import mask_secrets, security_log
from tokens import crypto
from tokens.errors import TokenServiceError
from tokens.gateway import cache
from tokens.models import (
    AccessToken,
    App,
    AuditAction,
    AuditEvent,
    Plan,
    TokenApi,
    TokenOrigin,
    TokenStatus,
)

Actor = AbstractBaseUser | App


class TokenNotEditable(TokenServiceError):
    pass


class TokenNotRevocable(TokenServiceError):
    pass


class StaleTokenEdit(TokenServiceError):
    """The token changed after the editor loaded it; nothing was saved."""


class RevokeReasonRequired(TokenServiceError):
    """The channel asks why a token is revoked, and no reason was given."""


class RevokeChannel:
    PORTAL = "portal"  # the portal's REVOKE and Django admin: portal-issued tokens only
    OAUTH = "oauth"  # RFC 7009 revocation by the client the token was issued to
    # An incident: all tokens of an app whose secret leaked, a token a secret scanner
    # found public. Any origin, OAuth-issued too; only an expired token is left alone.
    INCIDENT = "incident"


# Whether a revoke must say why, by channel: the one rule the portal's REVOKE and Django
# admin (both the PORTAL channel) follow. Their forms ask ``revoke_reason_required``;
# ``token_revoke`` enforces it. The contract (DESIGN.md) says "an optional reason".
_REASON_REQUIRED = {
    RevokeChannel.PORTAL: False,
    RevokeChannel.OAUTH: False,  # RFC 7009 carries no reason
    RevokeChannel.INCIDENT: False,  # the incident's own code always says why
}


def revoke_reason_required(channel: str = RevokeChannel.PORTAL) -> bool:
    """Whether revoking through ``channel`` needs a reason."""
    return _REASON_REQUIRED[channel]


def revoke_refusal(token: AccessToken, channel: str, now: datetime) -> str | None:
    """Why revoking ``token`` through ``channel`` is refused, or None: the one rule of
    ``token_revoke``, ``revoke_batch`` and the admin's action (``AccessToken.revoke_refusal``).
    The portal refuses expired, then OAuth-issued tokens; an incident, expired ones; an
    RFC 7009 call, nothing (a client may revoke its own token whatever its state)."""
    if channel == RevokeChannel.OAUTH:
        return None
    return token.revoke_refusal(portal=channel == RevokeChannel.PORTAL, now=now)


# What a channel says when it refuses a revoke (revoke_refusal).
_REVOKE_REFUSED = {
    TokenOrigin.OAUTH: "This token was issued by the OAuth flow; only its client can revoke "
    "it, through the revocation endpoint (RFC 7009).",
    TokenStatus.EXPIRED: "This token has expired; it no longer needs revoking.",
}


@dataclass(frozen=True)
class IssuedToken:
    token: AccessToken
    secret: str  # shown once to whoever asked for it, never stored


def actor_label(actor: Actor | str | None) -> str:
    """Who acted, as audit entries name them; a str is a named system actor
    ("secret scanning")."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    if isinstance(actor, App):
        return f"client {actor.name} ({actor.client_id})"
    return actor.get_username()


def _actor_user(actor: Actor | str | None):
    return None if actor is None or isinstance(actor, App | str) else actor


def _plans_snapshot(plans: Iterable[Plan], *, among: Iterable[Plan] = ()) -> dict[str, str]:
    """{API: plan name}. APIs may share a name and version (base paths differ): such an
    API of ``plans`` or ``among`` is labelled with its base path, so no entry hides another.
    """
    plans = list(plans)
    apis = {plan.api_id: plan.api for plan in [*plans, *among]}
    shared = Counter(str(api) for api in apis.values())

    def label(api) -> str:
        return f"{api} ({api.base_path})" if shared[str(api)] > 1 else str(api)

    return {label(plan.api): plan.name for plan in sorted(plans, key=lambda p: label(p.api))}


def _normalise_extra_fields(pairs: Iterable[Sequence[str]]) -> list[list[str]]:
    return [[str(name), str(value)] for name, value in pairs]


def _record(*, token, action, actor, changes, remote_addr) -> AuditEvent:
    return AuditEvent.objects.create(
        token=token,
        action=action,
        actor=_actor_user(actor),
        actor_label=actor_label(actor),
        changes=changes,
        token_version=token.version,
        remote_addr=remote_addr or None,
    )


def _record_change(*, token, action, actor, changes, remote_addr, event: str, **fields) -> None:
    """The end of every change to an existing token: its audit event, the purge of the
    gateways' cache once the transaction commits, and the security log line (written
    once it commits too, with ``fields``)."""
    _record(token=token, action=action, actor=actor, changes=changes, remote_addr=remote_addr)
    cache.purge_token_after_commit(token.digest)
    security_log(event, actor=actor, token=token, remote_addr=remote_addr, **fields, on_commit=True)


def check_one_plan_per_api(plans: Sequence[Plan]) -> None:
    api_ids = [plan.api_id for plan in plans]
    if len(api_ids) != len(set(api_ids)):
        raise TokenServiceError("A token can have only one plan per API.")


@transaction.atomic
def token_create(
    *,
    app: App,
    owner: str,
    plans: Iterable[Plan] = (),
    extra_fields: Iterable[Sequence[str]] = (),
    expires_at: datetime | None = None,
    origin: str = TokenOrigin.PORTAL,
    grant_type: str = "",
    actor: Actor | None,
    remote_addr: str | None = None,
) -> IssuedToken:
    plans = list(plans)
    check_one_plan_per_api(plans)
    if expires_at is not None and expires_at <= timezone.now():
        raise TokenServiceError("The expiry must be in the future.")
    secret = crypto.generate_token()
    prefix, suffix = crypto.display_parts(secret)
    token = AccessToken.objects.create(
        digest=crypto.digest(secret),
        prefix=prefix,
        suffix=suffix,
        app=app,
        owner=owner,
        extra_fields=_normalise_extra_fields(extra_fields),
        origin=origin,
        grant_type=grant_type,
        created_by=_actor_user(actor),
        expires_at=expires_at,
    )
    TokenApi.objects.bulk_create(
        TokenApi(token=token, api_id=plan.api_id, plan=plan) for plan in plans
    )
    _record(
        token=token,
        action=AuditAction.CREATED,
        actor=actor,
        remote_addr=remote_addr,
        changes={
            field: [None, value]
            for field, value in {
                "app": app.name,
                "owner": owner,
                "origin": token.get_origin_display(),
                "expires_at": expires_at.isoformat() if expires_at else None,
                "extra_fields": token.extra_fields,
                "apis": _plans_snapshot(plans),
            }.items()
            if value
        },
    )
    security_log(
        "authn_token_created",
        actor=actor,
        token=token,
        remote_addr=remote_addr,
        app=app.client_id,
        origin=origin,
        on_commit=True,
    )
    return IssuedToken(token=token, secret=secret)


def _describe_changes_since(token: AccessToken, version: int) -> str:
    events = list(token.events.filter(token_version__gt=version).order_by("created_at", "id"))
    if not events:
        return ""
    parts = []
    for event in events:
        fields = ", ".join(_FIELD_LABELS.get(name, name) for name in event.changes) or "nothing"
        when = timefmt.exact(event.created_at)
        parts.append(
            f"{event.get_action_display().lower()} by {event.actor_label} at {when} ({fields})"
        )
    return "; ".join(parts)


_FIELD_LABELS = {
    "owner": "Owner",
    "extra_fields": "Extra Fields",
    "apis": "APIs and Plans",
    "revoked_at": "status",
    "revocation_reason": "reason",
}


@transaction.atomic
def token_update(
    *,
    token: AccessToken,
    expected_version: int,
    owner: str,
    extra_fields: Iterable[Sequence[str]],
    plans: Iterable[Plan],
    actor: Actor | None,
    remote_addr: str | None = None,
) -> bool:
    """Change the owner, extra fields and API/plan associations; nothing else can change.

    Returns whether anything changed. Refuses expired and revoked tokens, and an edit
    based on a version older than the current one (``StaleTokenEdit``).
    """
    locked = AccessToken.objects.select_for_update().get(pk=token.pk)
    if locked.version != expected_version:
        what = _describe_changes_since(locked, expected_version)
        raise StaleTokenEdit(
            "This token was changed by someone else after you opened the form"
            + (f": {what}" if what else "")
            + ". Nothing was saved; review the current values and edit again."
        )
    if not locked.can_be_edited():
        raise TokenNotEditable(
            f"This token is {locked.status.label.lower()} and can no longer be edited."
        )
    plans = list(plans)
    check_one_plan_per_api(plans)
    new_extra = _normalise_extra_fields(extra_fields)
    links = {link.api_id: link for link in locked.api_links.select_related("api", "plan")}
    old_plans = [link.plan for link in links.values()]
    for link in links.values():
        link.plan.api = link.api  # snapshot names without more queries

    changes = {}
    if locked.owner != owner:
        changes["owner"] = [locked.owner, owner]
    if locked.extra_fields != new_extra:
        changes["extra_fields"] = [locked.extra_fields, new_extra]
    before = _plans_snapshot(old_plans, among=plans)
    after = _plans_snapshot(plans, among=old_plans)
    if before != after:
        changes["apis"] = [before, after]
    if not changes:
        return False

    wanted = {plan.api_id: plan for plan in plans}
    TokenApi.objects.filter(token=locked).exclude(api_id__in=wanted).delete()
    for api_id, plan in wanted.items():
        link = links.get(api_id)
        if link is None:
            TokenApi.objects.create(token=locked, api_id=api_id, plan=plan)
        elif link.plan_id != plan.pk:
            TokenApi.objects.filter(pk=link.pk).update(plan=plan)

    locked.owner = owner
    locked.extra_fields = new_extra
    locked.version = F("version") + 1
    locked.save(update_fields=["owner", "extra_fields", "version"])
    locked.refresh_from_db(fields=["version"])
    _record_change(
        token=locked,
        action=AuditAction.EDITED,
        actor=actor,
        changes=changes,
        remote_addr=remote_addr,
        event="authn_token_updated",
        fields=sorted(changes),
    )
    token.owner, token.extra_fields, token.version = locked.owner, new_extra, locked.version
    return True


@transaction.atomic
def token_revoke(
    *,
    token: AccessToken,
    actor: Actor | str | None,
    reason: str = "",
    channel: str = RevokeChannel.PORTAL,
    remote_addr: str | None = None,
) -> bool:
    """Revoke ``token``; idempotent and safe under concurrency.

    Returns True when this call revoked it, False when it was already revoked. In the
    portal channel only active tokens of origin ``portal`` may be revoked; OAuth-issued
    tokens are revoked by their client through RFC 7009. A channel that requires a
    reason (``revoke_reason_required``) refuses a revoke without one.
    """
    now = timezone.now()
    if refusal := revoke_refusal(token, channel, now):
        raise TokenNotRevocable(_REVOKE_REFUSED[refusal])
    if revoke_reason_required(channel) and not reason.strip():
        # A token already revoked is only purged again (a retry): nothing to explain.
        token.refresh_from_db(fields=["revoked_at"])
        if token.revoked_at is None:
            raise RevokeReasonRequired("Say why the token is revoked: a reason is required.")
    label = actor_label(actor)
    reason = mask_secrets(reason)  # "leaked: tpk_…" pasted as the reason must not keep it
    # The conditional update is the lock: of any number of concurrent revokes,
    # exactly one changes the row and writes the audit event.
    changed = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now,
        revoked_by=label,
        revocation_reason=reason,
        version=F("version") + 1,
    )
    token.refresh_from_db(fields=["revoked_at", "revoked_by", "revocation_reason", "version"])
    if not changed:
        # Purge again: a retry after a revoke whose purge failed must still reach the cache.
        cache.purge_token_after_commit(token.digest)
        return False
    changes = {"revoked_at": [None, now.isoformat()]}
    if reason:
        changes["revocation_reason"] = [None, reason]
    _record_change(
        token=token,
        action=AuditAction.REVOKED,
        actor=actor,
        changes=changes,
        remote_addr=remote_addr,
        event="authn_token_revoked",
        channel=channel,
    )
    return True
