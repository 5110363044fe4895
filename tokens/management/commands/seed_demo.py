"""Fill a believable demo platform: APIs and plans, apps, tokens of every status and origin.

Safe to run again: what exists is kept. ``--tokens N`` adds tokens in bulk until the
platform holds N (fast: bulk inserts, no per-row service calls).
"""

import hashlib
import json
import os
import random
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from tokens import crypto, services
from tokens.models import (
    AccessToken,
    Api,
    App,
    AuditAction,
    AuditEvent,
    Plan,
    TokenApi,
    TokenOrigin,
)

DEMO_PASSWORD = "portal-demo-2026"

APIS = [
    (
        "Payments",
        "v2",
        "/payments",
        "Card and bank payments",
        [("Free", 60), ("Silver", 600), ("Gold", 6000)],
    ),
    ("Orders", "v1", "/orders", "Order management", [("Free", 60), ("Business", 3000)]),
    (
        "Customers",
        "v1",
        "/customers",
        "Customer profiles and consent",
        [("Standard", 300), ("Premium", 3000)],
    ),
    (
        "Shipping",
        "v1",
        "/shipping",
        "Rates, labels and tracking",
        [("Basic", 120), ("Express", 1200)],
    ),
    (
        "Catalog",
        "v3",
        "/catalog",
        "Products, prices and stock",
        [("Public", 100), ("Partner", 5000)],
    ),
]

APPS = [
    ("Acme Checkout", [("/payments", "Gold"), ("/orders", "Business")]),
    ("Globex Mobile", [("/customers", "Premium"), ("/catalog", "Partner")]),
    ("Initech Partner Portal", [("/catalog", "Public"), ("/orders", "Free")]),
    ("Umbrella Logistics", [("/shipping", "Express"), ("/orders", "Free")]),
    ("Stark Analytics", [("/customers", "Standard"), ("/payments", "Silver")]),
]

OWNERS = [
    "ana.souza@acme.example",
    "bruno.lima@globex.example",
    "carla.mendes@initech.example",
    "diego.rocha@umbrella.example",
    "elena.petrova@stark.example",
    "farah.khan@acme.example",
    "gustavo.alves@globex.example",
    "hana.sato@initech.example",
    "ivan.horvat@umbrella.example",
    "julia.nowak@stark.example",
    "Checkout backend (prod)",
    "Mobile app (iOS)",
    "Nightly sync job",
    "Partner: Soylent Corp",
    "QA automation",
]

EXTRA = [
    [["Cost center", "CC-1042"], ["Environment", "production"]],
    [["Ticket", "SUP-2291"]],
    [["Environment", "staging"], ["Contact", "platform-team@example.com"]],
    [],
    [["Contract", "MSA-2026-17"], ["Region", "eu-west"]],
]


class Command(BaseCommand):
    help = "Fill the database with a demo API platform and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tokens", type=int, default=0, help="Add bulk tokens until there are this many."
        )
        parser.add_argument("--quiet-login", action="store_true", help="Do not print the logins.")

    def handle(self, *args, tokens, quiet_login, **options):
        if tokens < 0:
            raise CommandError("--tokens must be zero or more.")
        if not settings.DEBUG and not os.environ.get("TOKEN_PORTAL_ALLOW_DEMO"):
            raise CommandError(
                "Refusing to seed demo users with a known password when DJANGO_DEBUG=0 "
                "(set TOKEN_PORTAL_ALLOW_DEMO=1 to insist)."
            )
        rng = random.Random(2026)  # noqa: S311 - demo data, not secrets
        admin, support = self.users()
        plans = self.platform()
        gateway_secret = self.gateway_app()
        if not AccessToken.objects.exists():
            self.demo_tokens(rng, admin, plans)
        if tokens:
            self.bulk_tokens(tokens, rng)
        self.stdout.write(
            self.style.SUCCESS(f"Demo platform ready: {AccessToken.objects.count()} tokens.")
        )
        if gateway_secret:
            client_id = App.objects.get(name="API Gateway").client_id
            self.stdout.write(
                f"Gateway client (may introspect): client_id={client_id} "
                f"client_secret={gateway_secret}  (shown once)"
            )
        if not quiet_login:
            self.stdout.write(
                "Log in at http://127.0.0.1:8000/accounts/login/ as\n"
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
        now = timezone.now()
        apps = list(
            App.objects.exclude(name="API Gateway").prefetch_related("subscription_set__plan__api")
        )
        all_plans = list(plans.values())
        for index in range(42):
            app = apps[index % len(apps)]
            subscribed = [s.plan for s in app.subscription_set.all()]
            origin = TokenOrigin.OAUTH if index % 4 == 3 else TokenOrigin.PORTAL
            expires_at = None if index % 3 == 0 else now + timedelta(days=rng.randint(5, 365))
            issued = services.token_create(
                app=app,
                owner=OWNERS[index % len(OWNERS)],
                plans=subscribed if origin == TokenOrigin.OAUTH or index % 2 else subscribed[:1],
                extra_fields=EXTRA[index % len(EXTRA)] if origin == TokenOrigin.PORTAL else [],
                expires_at=expires_at if origin == TokenOrigin.PORTAL else now + timedelta(hours=1),
                origin=origin,
                grant_type="client_credentials" if origin == TokenOrigin.OAUTH else "",
                actor=None if origin == TokenOrigin.OAUTH else admin,
                remote_addr="127.0.0.1",
            )
            token = issued.token
            created = now - timedelta(days=rng.randint(1, 400), minutes=rng.randint(0, 1440))
            AccessToken.objects.filter(pk=token.pk).update(
                created_at=created,
                last_used_at=None
                if index % 5 == 4
                else now - timedelta(minutes=rng.randint(1, 9000)),
            )
            token.events.update(created_at=created)
            token.refresh_from_db()
            if index % 7 == 2 and origin == TokenOrigin.PORTAL:
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
            if index % 6 == 5:
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
            elif index % 8 == 1:
                AccessToken.objects.filter(pk=token.pk).update(
                    expires_at=now - timedelta(days=rng.randint(1, 30))
                )

    def bulk_tokens(self, target: int, rng, batch: int = 50_000):
        """Add tokens until there are ``target``: raw multi-row inserts (COPY on PostgreSQL).

        A million tokens, their API links and their "created" events take well under a
        minute this way, where one ORM save per token would take hours. The secrets are
        random and thrown away: nobody can present these tokens, they exist to be listed.
        """
        missing = target - AccessToken.objects.count()
        if missing <= 0:
            return
        apps = [
            (app.pk, [(s.api_id, s.plan_id) for s in app.subscription_set.all()])
            for app in App.objects.prefetch_related("subscription_set")
        ]
        now = timezone.now()
        adapt_dt = connection.ops.adapt_datetimefield_value
        uuid_field = AccessToken._meta.get_field("public_id")
        next_id = (
            AccessToken.objects.order_by("-id").values_list("id", flat=True).first() or 0
        ) + 1
        next_link = (TokenApi.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
        next_event = (
            AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        ) + 1
        self.stdout.write(f"Adding {missing} tokens in bulk…")
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                # A big page cache keeps the random-key indexes (digest, public id) in
                # memory while they grow; a crash mid-seed loses only demo data.
                cursor.execute("PRAGMA cache_size = -1000000")
                cursor.execute("PRAGMA synchronous = OFF")
        done = 0
        while done < missing:
            size = min(batch, missing - done)
            tokens, links, events = [], [], []
            for _ in range(size):
                digest = hashlib.sha256(os.urandom(32)).hexdigest()
                app_id, subscriptions = apps[rng.randrange(len(apps))]
                roll = rng.random()
                age = timedelta(seconds=rng.randrange(400 * 86400))
                created = now - age
                owner = f"{OWNERS[rng.randrange(len(OWNERS))]} #{rng.randrange(100000)}"
                oauth = roll < 0.3
                revoked = roll > 0.93
                expires = None if roll > 0.6 else created + timedelta(days=rng.randint(1, 500))
                tokens.append(
                    (
                        next_id,
                        uuid_field.get_db_prep_value(uuid.uuid4(), connection),
                        digest,
                        crypto.TOKEN_PREFIX + digest[:8],
                        digest[-4:],
                        app_id,
                        owner,
                        "[]",
                        TokenOrigin.OAUTH if oauth else TokenOrigin.PORTAL,
                        "client_credentials" if oauth else "",
                        adapt_dt(created),
                        adapt_dt(expires) if expires else None,
                        adapt_dt(now - age / 2) if revoked else None,
                        "seed_demo" if revoked else "",
                        "",
                        1,
                    )
                )
                for api_id, plan_id in subscriptions:
                    links.append((next_link, next_id, api_id, plan_id))
                    next_link += 1
                events.append(
                    (
                        next_event,
                        next_id,
                        AuditAction.CREATED.value,
                        "seed_demo",
                        json.dumps({"owner": [None, owner]}),
                        1,
                        adapt_dt(created),
                    )
                )
                next_event += 1
                next_id += 1
            with transaction.atomic():
                _insert(
                    "tokens_accesstoken",
                    "id public_id digest prefix suffix app_id owner extra_fields origin "
                    "grant_type created_at expires_at revoked_at revoked_by "
                    "revocation_reason version",
                    tokens,
                )
                _insert("tokens_tokenapi", "id token_id api_id plan_id", links)
                _insert(
                    "tokens_auditevent",
                    "id token_id action actor_label changes token_version created_at",
                    events,
                )
            done += size
            self.stdout.write(f"  {done}/{missing}")
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(
                no_style(), [AccessToken, TokenApi, AuditEvent]
            ):
                cursor.execute(sql)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE tokens_accesstoken, tokens_tokenapi, tokens_auditevent")


def _insert(table: str, columns: str, rows: list[tuple]) -> None:
    names = columns.split()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(names))
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})",  # noqa: S608
                rows,
            )
