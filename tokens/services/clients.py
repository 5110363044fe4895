"""The client apps: registering one, its secret, and the tokens it asks for and revokes
itself through the OAuth endpoints."""

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from portal.logs import security_log
from tokens import conf, crypto
from tokens.models import AccessToken, App, Plan, TokenOrigin
from tokens.services.lifecycle import (
    IssuedToken,
    RevokeChannel,
    check_one_plan_per_api,
    token_create,
    token_revoke,
)

logger = logging.getLogger("tokens.services")


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
    check_one_plan_per_api(plans)
    for plan in plans:
        app.subscription_set.create(api_id=plan.api_id, plan=plan)
    return app, secret


@transaction.atomic
def app_regenerate_secret(*, app: App, actor=None, remote_addr: str | None = None) -> str:
    """A new client secret for ``app`` (the old one stops working at once); returned
    to be shown once, stored only as its digest."""
    secret = crypto.generate_client_secret()
    app.set_client_secret(secret)
    app.save(update_fields=["client_secret_digest"])
    security_log(
        "app_secret_regenerated",
        actor=actor,
        remote_addr=remote_addr,
        app=app.client_id,
        on_commit=True,
    )
    return secret


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
    lifetime = conf.setting("OAUTH_TOKEN_LIFETIME")
    return token_create(
        app=app,
        owner=app.name,
        plans=app.default_plans(base_paths),
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
