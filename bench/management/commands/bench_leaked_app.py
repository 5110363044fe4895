"""A bench app whose ``--count`` portal tokens all leak (bench/jobs.py revokes them all),
their secrets written to ``--out``; ``--delete`` removes the app, its tokens, their
events and its jobs again, so the data set serves the next run."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from portal.cache.tier import settle_once
from tokens import crypto
from tokens.models import AccessToken, App, AuditEvent, Job, Plan, TokenApi, TokenOrigin

NAME = "Bench leaked"


class Command(BaseCommand):
    help = "Create (or --delete) the bench app whose tokens bench/jobs.py revokes."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=100_000)
        parser.add_argument("--out")
        parser.add_argument("--delete", action="store_true")

    def handle(self, *args, **options):
        with settle_once():
            self._handle(**options)

    @transaction.atomic
    def _handle(self, *, count, out, delete, **options):
        app = App.objects.filter(name=NAME).first()
        if app is not None:
            # Each deleted token's purge is published after the commit; settle_once waits
            # for them together, not 0.08 s each (100,000 tokens: over two hours).
            tokens = AccessToken.objects.filter(app=app)
            AuditEvent.objects.filter(token__in=tokens).delete()
            TokenApi.objects.filter(token__in=tokens).delete()
            tokens.delete()
            Job.objects.filter(query__contains=f"app={app.pk}").delete()
            app.delete()
        if delete:
            return
        app = App.objects.create(name=NAME, client_secret_digest=crypto.digest("unused"))
        plan = Plan.objects.select_related("api").get(api__base_path="/payments", name="Gold")
        now = timezone.now()
        secrets_ = []
        for start in range(0, count, 5000):
            batch = [crypto.generate_token() for _ in range(min(5000, count - start))]
            secrets_ += batch
            tokens = AccessToken.objects.bulk_create(
                AccessToken(
                    digest=crypto.digest(secret),
                    prefix=crypto.display_parts(secret)[0],
                    suffix=crypto.display_parts(secret)[1],
                    app=app,
                    owner=f"leaked #{start + index}",
                    origin=TokenOrigin.PORTAL,
                    created_at=now,
                )
                for index, secret in enumerate(batch)
            )
            TokenApi.objects.bulk_create(
                TokenApi(token=token, api=plan.api, plan=plan) for token in tokens
            )
        Path(out).write_text(json.dumps({"app_id": app.pk, "secrets": secrets_}))
