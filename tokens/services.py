"""Every write to tokens goes through here: views, admin, OAuth endpoints and commands.

Each service runs in one transaction and writes the audit event of what it did.
"""

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

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

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | App


class TokenNotEditable(TokenServiceError):
    pass


class TokenNotRevocable(TokenServiceError):
    pass


class StaleTokenEdit(TokenServiceError):
    """The token changed after the editor loaded it; nothing was saved."""


class RevokeChannel:
    PORTAL = "portal"  # the portal's REVOKE and Django admin: portal-issued tokens only
    OAUTH = "oauth"  # RFC 7009 revocation by the client the token was issued to


@dataclass(frozen=True)
class IssuedToken:
    token: AccessToken
    secret: str  # shown once to whoever asked for it, never stored


def actor_label(actor: Actor | None) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, App):
        return f"client {actor.name} ({actor.client_id})"
    return actor.get_username()


def _actor_user(actor: Actor | None):
    return None if actor is None or isinstance(actor, App) else actor


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


def _check_one_plan_per_api(plans: Sequence[Plan]) -> None:
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
    _check_one_plan_per_api(plans)
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
        when = timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S")
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
    _check_one_plan_per_api(plans)
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
    _record(
        token=locked,
        action=AuditAction.EDITED,
        actor=actor,
        changes=changes,
        remote_addr=remote_addr,
    )
    cache.purge_token_after_commit(locked.digest)
    security_log(
        "authn_token_updated",
        actor=actor,
        token=locked,
        remote_addr=remote_addr,
        fields=sorted(changes),
        on_commit=True,
    )
    token.owner, token.extra_fields, token.version = locked.owner, new_extra, locked.version
    return True


@transaction.atomic
def token_revoke(
    *,
    token: AccessToken,
    actor: Actor | None,
    reason: str = "",
    channel: str = RevokeChannel.PORTAL,
    remote_addr: str | None = None,
) -> bool:
    """Revoke ``token``; idempotent and safe under concurrency.

    Returns True when this call revoked it, False when it was already revoked. In the
    portal channel only active tokens of origin ``portal`` may be revoked; OAuth-issued
    tokens are revoked by their client through RFC 7009.
    """
    if channel == RevokeChannel.PORTAL and token.origin != TokenOrigin.PORTAL:
        raise TokenNotRevocable(
            "This token was issued by the OAuth flow; only its client can revoke it, "
            "through the revocation endpoint (RFC 7009)."
        )
    now = timezone.now()
    if channel == RevokeChannel.PORTAL and token.status_at(now) == "expired":
        raise TokenNotRevocable("This token has expired; it no longer needs revoking.")
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
    _record(
        token=token,
        action=AuditAction.REVOKED,
        actor=actor,
        changes=changes,
        remote_addr=remote_addr,
    )
    cache.purge_token_after_commit(token.digest)
    security_log(
        "authn_token_revoked",
        actor=actor,
        token=token,
        remote_addr=remote_addr,
        channel=channel,
        on_commit=True,
    )
    return True


@transaction.atomic
def app_create(
    *, name: str, subscriptions: Iterable[Plan] = (), can_introspect: bool = False
) -> tuple[App, str]:
    """Register an app; returns it with its client secret (shown once, stored as a digest)."""
    secret = crypto.generate_client_secret()
    app = App(name=name, can_introspect=can_introspect)
    app.set_client_secret(secret)
    app.full_clean()
    app.save()
    plans = list(subscriptions)
    _check_one_plan_per_api(plans)
    for plan in plans:
        app.subscription_set.create(api_id=plan.api_id, plan=plan)
    return app, secret


@transaction.atomic
def app_regenerate_secret(*, app: App) -> str:
    secret = crypto.generate_client_secret()
    app.set_client_secret(secret)
    app.save(update_fields=["client_secret_digest"])
    return secret


# --- Bulk revocation (Django admin's "Revoke selected tokens") -----------------------


@dataclass(frozen=True)
class BulkRevokeResult:
    revoked: list[AccessToken]
    skipped: list[tuple[AccessToken, str]]  # each with why it was not revoked


def portal_revoke_skip_reason(token: AccessToken, *, now: datetime | None = None) -> str | None:
    """Why the portal channel would leave ``token`` alone; None when it would revoke it.

    The same refusals as ``token_revoke(channel=PORTAL)``, in the order that tells a
    person the most: a revoked token is "already revoked" whatever its origin.
    """
    status = token.status_at(now or timezone.now())
    if status == TokenStatus.REVOKED:
        return "Already revoked."
    if token.origin != TokenOrigin.PORTAL:
        return (
            "Issued by the OAuth flow: only its client can revoke it, through the "
            "revocation endpoint (RFC 7009)."
        )
    if status == TokenStatus.EXPIRED:
        return "Expired: the gateway already refuses it, so it needs no revoking."
    return None


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


@transaction.atomic
def token_issue_for_client(
    *,
    app: App,
    base_paths: Iterable[str] | None = None,
    remote_addr: str | None = None,
) -> IssuedToken:
    """Issue a token to ``app`` through the OAuth token endpoint (client credentials).

    The token carries the app's subscriptions (only those of ``base_paths`` when the
    client asked for a scope) and expires after ``OAUTH_TOKEN_LIFETIME`` seconds.
    """
    subscriptions = app.subscription_set.select_related("plan__api")
    if base_paths is not None:
        subscriptions = subscriptions.filter(api__base_path__in=list(base_paths))
    lifetime = settings.TOKEN_PORTAL["OAUTH_TOKEN_LIFETIME"]
    return token_create(
        app=app,
        owner=app.name,
        plans=[subscription.plan for subscription in subscriptions],
        expires_at=timezone.now() + timedelta(seconds=lifetime),
        origin=TokenOrigin.OAUTH,
        grant_type="client_credentials",
        actor=app,
        remote_addr=remote_addr,
    )


@transaction.atomic
def token_revoke_by_client(*, client: App, secret: str, remote_addr: str | None = None) -> bool:
    """RFC 7009 revocation: ``client`` revokes one of its own tokens, of any origin.

    Returns True when this call revoked it. An unknown, malformed or already revoked
    token, and a token of another client, change nothing (the endpoint answers 200
    either way, so that it tells nobody whether someone else's token exists).
    """
    token = AccessToken.objects.by_secret(secret).first()
    if token is None:
        return False
    if token.app_id != client.pk:
        logger.warning(
            "Client %s tried to revoke token %s of another app; refused.",
            client.client_id,
            token.public_id,
        )
        return False
    return token_revoke(
        token=token, actor=client, channel=RevokeChannel.OAUTH, remote_addr=remote_addr
    )
