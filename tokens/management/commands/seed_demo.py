"""Fill a believable demo platform: APIs and plans, apps, tokens of every status and origin.

Safe to run again: what exists is kept. ``--tokens N`` adds tokens in bulk until the
platform holds N (fast: bulk inserts, no per-row service calls).
"""

import contextlib
import logging
import os
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from tokens import services
from tokens.management.bulk_seed import bulk_tokens
from tokens.management.demo_data import APIS, APPS, EXTRA, OWNERS
from tokens.models import (
    AccessToken,
    Api,
    App,
    AuditAction,
    Plan,
    TokenOrigin,
)

DEMO_PASSWORD = "portal-demo-2026"


def _portal_url(url: str) -> str:
    """``--url`` without its trailing slash; refused unless an http(s) address."""
    url = url.strip().rstrip("/")
    if not url:
        return ""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise CommandError(
            "--url must be an http:// or https:// address, such as http://127.0.0.1:8000."
        ) from None
    return url


@contextlib.contextmanager
def _info_logs_silenced(silenced: bool):
    """Log records of level INFO and below dropped for the block (when ``silenced``)."""
    previous = logging.root.manager.disable
    if silenced:
        logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)


class Command(BaseCommand):
    help = (
        "Fill the database with a demo API platform and print how to log in. The security "
        "log's lines of the seeding itself are left out unless --verbosity 2."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tokens", type=int, default=0, help="Add bulk tokens until there are this many."
        )
        parser.add_argument("--quiet-login", action="store_true", help="Do not print the logins.")
        parser.add_argument(
            "--url",
            default="",
            help="The portal's address, to print in the logins (e.g. http://127.0.0.1:8000); "
            "without it, the logins say to open the address runserver prints.",
        )

    def handle(self, *args, tokens, quiet_login, url, verbosity, **options):
        if tokens < 0:
            raise CommandError("--tokens must be zero or more.")
        url = _portal_url(url)
        if not settings.DEBUG and not os.environ.get("TOKEN_PORTAL_ALLOW_DEMO"):
            raise CommandError(
                "Refusing to seed demo users with a known password when DJANGO_DEBUG=0 "
                "(set TOKEN_PORTAL_ALLOW_DEMO=1 to insist)."
            )
        rng = random.Random(2026)  # noqa: S311 - demo data, not secrets
        # Each token made here writes a JSON security-log line (on stderr): dozens of
        # them would bury what this command prints. Warnings and errors still show.
        with _info_logs_silenced(verbosity < 2):
            admin, support = self.users()
            plans = self.platform()
            gateway_secret = self.gateway_app()
            if not AccessToken.objects.exists():
                self.demo_tokens(rng, admin, plans)
            if tokens:
                bulk_tokens(tokens, say=self.stdout.write)
        self.stdout.write(
            self.style.SUCCESS(f"Demo platform ready: {AccessToken.objects.count()} tokens.")
        )
        if gateway_secret:
            client_id = App.objects.get(name="API Gateway").client_id
            self.stdout.write(
                f"Gateway client (may introspect): client_id={client_id} "
                f"client_secret={gateway_secret}  (shown once)"
            )
        if not quiet_login:  # last, where they are seen
            where = (
                f"Log in at {url}/accounts/login/ as"
                if url
                else "Open the address runserver prints (http://127.0.0.1:8000/ by default) "
                "and log in at /accounts/login/ as"
            )
            self.stdout.write(
                f"{where}\n"
                f"  admin   / {DEMO_PASSWORD}   (Portal administrators: the portal)\n"
                f"  support / {DEMO_PASSWORD}   (Support staff: Django admin at /admin/)"
            )

    def users(self):
        User = get_user_model()
        accounts = []
        for username, group, first in (
            ("admin", "Portal administrators", "Ada"),
            ("support", "Support staff", "Sam"),
        ):
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "email": f"{username}@portal.example",
                    "is_staff": True,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(Group.objects.get(name=group))
            accounts.append(user)
        return accounts

    def platform(self) -> dict[tuple[str, str], Plan]:
        plans = {}
        for name, version, base_path, description, tiers in APIS:
            api, _ = Api.objects.get_or_create(
                base_path=base_path,
                defaults={"name": name, "version": version, "description": description},
            )
            for plan_name, rate in tiers:
                plan, _ = Plan.objects.get_or_create(
                    api=api,
                    name=plan_name,
                    defaults={"rate_limit": rate, "description": f"{plan_name} tier of {name}"},
                )
                plans[(base_path, plan_name)] = plan
        for app_name, subscriptions in APPS:
            if App.objects.filter(name=app_name).exists():
                continue
            services.app_create(name=app_name, subscriptions=[plans[key] for key in subscriptions])
        return plans

    def gateway_app(self) -> str | None:
        if App.objects.filter(name="API Gateway").exists():
            return None
        _, secret = services.app_create(name="API Gateway", can_introspect=True)
        return secret

    @transaction.atomic
    def demo_tokens(self, rng, admin, plans):
        """42 tokens made through the services, then dated back along a timeline that
        could have happened: created, maybe edited, used (never before it was created,
        nor after it expired or was revoked), then expired or revoked; each audit event
        dated with its change."""
        now = timezone.now()
        apps = list(
            App.objects.exclude(name="API Gateway").prefetch_related("subscription_set__plan__api")
        )
        all_plans = list(plans.values())
        for index in range(42):
            app = apps[index % len(apps)]
            subscribed = [s.plan for s in app.subscription_set.all()]
            origin = TokenOrigin.OAUTH if index % 4 == 3 else TokenOrigin.PORTAL
            revoke = index % 6 == 5
            expire = not revoke and index % 8 == 1
            created = now - timedelta(days=rng.randint(1, 400), minutes=rng.randint(0, 1440))
            if origin == TokenOrigin.OAUTH:
                # A client-credentials token lives an hour: a live one is recent.
                if not expire:
                    created = now - timedelta(minutes=rng.randint(1, 50))
                expires_at = created + timedelta(hours=1)
            elif expire:
                expires_at = _between(rng, created, now)
            else:
                expires_at = None if index % 3 == 0 else now + timedelta(days=rng.randint(5, 365))
            issued = services.token_create(
                app=app,
                owner=OWNERS[index % len(OWNERS)],
                plans=subscribed if origin == TokenOrigin.OAUTH or index % 2 else subscribed[:1],
                extra_fields=EXTRA[index % len(EXTRA)] if origin == TokenOrigin.PORTAL else [],
                # The service takes no expiry in the past: an expired one is dated below.
                expires_at=expires_at if expires_at and expires_at > now else None,
                origin=origin,
                grant_type="client_credentials" if origin == TokenOrigin.OAUTH else "",
                actor=None if origin == TokenOrigin.OAUTH else admin,
                remote_addr="127.0.0.1",
            )
            token = issued.token
            # Until when it could be used: now, its expiry, or (revoked) its revocation.
            end = min(now, expires_at) if expires_at else now
            revoked_at = _between(rng, created, end) if revoke else None
            end = revoked_at or end
            last_used = None if index % 5 == 4 else _between(rng, created, end)
            AccessToken.objects.filter(pk=token.pk).update(
                created_at=created, expires_at=expires_at, last_used_at=last_used
            )
            created_event = token.events.get(action=AuditAction.CREATED)
            created_event.created_at = created
            if expires_at:
                created_event.changes["expires_at"] = [None, expires_at.isoformat()]
            created_event.save(update_fields=["created_at", "changes"])
            token.refresh_from_db()
            if index % 7 == 2 and origin == TokenOrigin.PORTAL and not expire:
                extra_plan = rng.choice(
                    [p for p in all_plans if p.api_id not in {x.api_id for x in subscribed}]
                )
                services.token_update(
                    token=token,
                    expected_version=token.version,
                    owner=token.owner,
                    extra_fields=token.extra_field_pairs() + [["Reviewed", "yes"]],
                    plans=subscribed + [extra_plan],
                    actor=admin,
                    remote_addr="127.0.0.1",
                )
                token.events.filter(action=AuditAction.EDITED).update(
                    created_at=_between(rng, created, end)
                )
            if revoke:
                services.token_revoke(
                    token=token,
                    actor=admin if origin == TokenOrigin.PORTAL else app,
                    reason="Leaked in a public repository"
                    if index % 12 == 5
                    else "No longer needed",
                    channel=services.RevokeChannel.OAUTH
                    if origin == TokenOrigin.OAUTH
                    else services.RevokeChannel.PORTAL,
                    remote_addr="127.0.0.1",
                )
                AccessToken.objects.filter(pk=token.pk).update(revoked_at=revoked_at)
                event = token.events.get(action=AuditAction.REVOKED)
                event.created_at = revoked_at
                event.changes["revoked_at"] = [None, revoked_at.isoformat()]
                event.save(update_fields=["created_at", "changes"])


def _between(rng, start: datetime, end: datetime) -> datetime:
    """A moment from ``start`` to ``end``, to the second."""
    return start + timedelta(seconds=rng.randint(0, max(0, int((end - start).total_seconds()))))
