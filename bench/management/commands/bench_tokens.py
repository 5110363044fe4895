"""Tokens whose secrets the bench knows (seed_demo throws its secrets away), and clients.

Writes a JSON file: the introspecting gateway's and the token-owning client's
credentials, and the secrets of ``--count`` active tokens of that client.
"""

import json
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from tokens import crypto
from tokens.models import AccessToken, App, AuditAction, AuditEvent, Plan, TokenApi, TokenOrigin


def _app(name: str, *, can_introspect: bool = False) -> tuple[App, str]:
    """The app ``name`` with a fresh client secret (the bench's own apps only)."""
    secret = crypto.generate_client_secret()
    app, _ = App.objects.get_or_create(name=name, defaults={"can_introspect": can_introspect})
    app.set_client_secret(secret)
    app.save()
    return app, secret


class Command(BaseCommand):
    help = "Create bench clients and tokens with known secrets; write them to a JSON file."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=2000)
        parser.add_argument("--out", required=True)

    @transaction.atomic
    def handle(self, *args, count, out, **options):
        gateway, gateway_secret = _app("Bench gateway", can_introspect=True)
        payer, payer_secret = _app("Bench payer")
        plan = Plan.objects.select_related("api").get(api__base_path="/payments", name="Gold")
        payer.subscription_set.get_or_create(api=plan.api, defaults={"plan": plan})
        now = timezone.now()
        secrets_ = [crypto.generate_token() for _ in range(count)]
        tokens = AccessToken.objects.bulk_create(
            AccessToken(
                digest=crypto.digest(secret),
                prefix=crypto.display_parts(secret)[0],
                suffix=crypto.display_parts(secret)[1],
                app=payer,
                owner=f"bench #{index}",
                origin=TokenOrigin.OAUTH,
                grant_type="client_credentials",
                created_at=now,
                expires_at=now + timedelta(days=1),
            )
            for index, secret in enumerate(secrets_)
        )
        if not tokens or tokens[0].pk is None:  # backends that return no ids (none here)
            tokens = list(AccessToken.objects.filter(app=payer, created_at=now).order_by("id"))
        TokenApi.objects.bulk_create(
            TokenApi(token=token, api=plan.api, plan=plan) for token in tokens
        )
        AuditEvent.objects.bulk_create(
            AuditEvent(
                token=token,
                action=AuditAction.CREATED,
                actor_label="bench",
                token_version=1,
                created_at=now,
            )
            for token in tokens
        )
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w") as file:
            json.dump(
                {
                    "gateway": {"client_id": gateway.client_id, "client_secret": gateway_secret},
                    "payer": {"client_id": payer.client_id, "client_secret": payer_secret},
                    "base_path": plan.api.base_path,
                    "secrets": secrets_,
                },
                file,
            )
        self.stdout.write(f"{count} bench tokens → {out}")
