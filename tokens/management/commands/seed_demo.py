"""Fill a believable demo platform: APIs and plans, apps, tokens of every status and origin.

Safe to run again: what exists is kept. ``--tokens N`` adds tokens in bulk until the
platform holds N (fast: bulk inserts, no per-row service calls).
"""

import contextlib
import os
import random
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from tokens import services
from tokens.models import (
    AccessToken,
    Api,
    App,
    AuditEvent,
    Plan,
    TokenApi,
    TokenOrigin,
    search_index_paused,
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
            self.bulk_tokens(tokens)
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

    def bulk_tokens(self, target: int, batch: int = 250_000):
        """Add tokens until there are ``target``, generated by the database itself.

        A million tokens, their API links and their "created" events take about a minute
        this way, where one ORM save per token would take hours and building the rows in
        Python most of a minute by itself: each batch is one ``INSERT … SELECT`` over a
        generated series, with random digests, apps, owners, ages and statuses drawn by
        the database; links come from each token's app subscriptions (so every plan
        belongs to its API) and events from the tokens. All in one transaction, with the
        secondary indexes (and on PostgreSQL the foreign keys and unique constraints)
        built once after the load, which also checks every row against them. Public ids
        grow with the id (random per load in their high bits), so their index is appended
        to. The secrets are never made: nobody can present these tokens, they exist to be
        listed and searched.
        """
        missing = target - AccessToken.objects.count()
        if missing <= 0:
            return
        vendor = connection.vendor
        apps = list(App.objects.order_by("pk").values_list("pk", "name"))
        first_id = (
            AccessToken.objects.order_by("-id").values_list("id", flat=True).first() or 0
        ) + 1
        # 88 random bits, then 40 bits of the id: unique across loads, ordered within one.
        id_prefix = format(uuid.uuid4().int >> 40, "022x")
        now = int(timezone.now().timestamp())
        self.stdout.write(f"Adding {missing} tokens in bulk…")
        tables = [AccessToken, TokenApi, AuditEvent]
        # SQLite's search index (tokens.models) is rebuilt once after a big load instead
        # of being written by a trigger per row.
        paused = search_index_paused(connection, enabled=missing >= 50_000)
        started = time.monotonic()
        bulk = _bulk_load(tables, indexes=missing >= 50_000, say=self.stdout.write)
        with bulk, paused, connection.cursor() as cursor:
            # Each app with its name: the tokens' copy of it (AccessToken.app_name).
            rows = {
                "seed_apps": [(ix, str(pk), name) for ix, (pk, name) in enumerate(apps)],
                "seed_owners": [(ix, owner, "") for ix, owner in enumerate(OWNERS)],
            }
            for name, values in rows.items():
                cursor.execute(f"CREATE TEMPORARY TABLE {name} (ix integer, value text, name text)")
                cursor.executemany(
                    f"INSERT INTO {name} (ix, value, name) VALUES (%s, %s, %s)",  # noqa: S608
                    values,
                )
            done = 0
            while done < missing:
                size = min(batch, missing - done)
                start = first_id + done
                cursor.execute(
                    _TOKENS_SQL[vendor],
                    {
                        "start": start,
                        "count": size,
                        "apps": len(apps),
                        "owners": len(OWNERS),
                        "now": now,
                        "prefix": id_prefix,
                    },
                )
                cursor.execute(_LINKS_SQL, {"start": start, "stop": start + size})
                cursor.execute(_EVENTS_SQL[vendor], {"start": start, "stop": start + size})
                done += size
                self.stdout.write(f"  {done}/{missing} ({time.monotonic() - started:.1f} s)")
            for name in ("seed_apps", "seed_owners"):
                cursor.execute(f"DROP TABLE {name}")
            for sql in connection.ops.sequence_reset_sql(no_style(), tables):
                cursor.execute(sql)
        with connection.cursor() as cursor:
            tables_sql = ", ".join(model._meta.db_table for model in tables)
            cursor.execute(f"ANALYZE {tables_sql}" if vendor == "postgresql" else "ANALYZE")


# One batch of tokens: per row a random digest, app, owner (with a number), age up to
# 400 days; 30 % OAuth-issued, 40 % without expiry, 7 % revoked (some expired by age).
_TOKEN_COLUMNS = (
    "id, public_id, digest, prefix, suffix, app_id, app_name, owner, extra_fields, origin,"
    " grant_type, created_at, expires_at, revoked_at, revoked_by, revocation_reason, version"
)
_TOKENS_SQL = {
    "sqlite": f"""
WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < %(count)s),
r AS MATERIALIZED (
  SELECT n, lower(hex(randomblob(32))) AS digest, abs(random()) %% 1000 AS roll,
    abs(random()) %% 34560000 AS age, abs(random()) %% %(apps)s AS app_ix,
    abs(random()) %% %(owners)s AS owner_ix, abs(random()) %% 100000 AS num,
    1 + abs(random()) %% 500 AS days
  FROM seq
)
INSERT INTO tokens_accesstoken ({_TOKEN_COLUMNS})
SELECT %(start)s + n, %(prefix)s || printf('%%010x', %(start)s + n), digest,
  'tpk_' || substr(digest, 1, 8), substr(digest, 61, 4), a.value, a.name,
  o.value || ' #' || num, '[]',
  CASE WHEN roll < 300 THEN 'oauth' ELSE 'portal' END,
  CASE WHEN roll < 300 THEN 'client_credentials' ELSE '' END,
  strftime('%%Y-%%m-%%d %%H:%%M:%%S', %(now)s - age, 'unixepoch'),
  CASE WHEN roll >= 600 THEN NULL
    ELSE strftime('%%Y-%%m-%%d %%H:%%M:%%S', %(now)s - age + days * 86400, 'unixepoch') END,
  CASE WHEN roll > 930 THEN strftime('%%Y-%%m-%%d %%H:%%M:%%S', %(now)s - age / 2, 'unixepoch')
    END,
  CASE WHEN roll > 930 THEN 'seed_demo' ELSE '' END, '', 1
FROM r JOIN seed_apps a ON a.ix = r.app_ix JOIN seed_owners o ON o.ix = r.owner_ix
ORDER BY n
""",  # noqa: S608
    "postgresql": f"""
WITH r AS MATERIALIZED (
  SELECT n, encode(sha256(int8send(n) || uuid_send(gen_random_uuid())), 'hex') AS digest,
    floor(random() * 1000)::int AS roll, floor(random() * 34560000)::int AS age,
    floor(random() * %(apps)s)::int AS app_ix, floor(random() * %(owners)s)::int AS owner_ix,
    floor(random() * 100000)::int AS num, 1 + floor(random() * 500)::int AS days
  FROM generate_series(0, %(count)s - 1) AS n
)
INSERT INTO tokens_accesstoken ({_TOKEN_COLUMNS})
SELECT %(start)s + n, (%(prefix)s || lpad(to_hex(%(start)s + n), 10, '0'))::uuid, digest,
  'tpk_' || substr(digest, 1, 8), substr(digest, 61, 4), a.value::bigint, a.name,
  o.value || ' #' || num, '[]'::jsonb,
  CASE WHEN roll < 300 THEN 'oauth' ELSE 'portal' END,
  CASE WHEN roll < 300 THEN 'client_credentials' ELSE '' END,
  to_timestamp(%(now)s - age),
  CASE WHEN roll < 600 THEN to_timestamp(%(now)s - age + days * 86400) END,
  CASE WHEN roll > 930 THEN to_timestamp(%(now)s - age / 2) END,
  CASE WHEN roll > 930 THEN 'seed_demo' ELSE '' END, '', 1
FROM r JOIN seed_apps a ON a.ix = r.app_ix JOIN seed_owners o ON o.ix = r.owner_ix
ORDER BY n
""",  # noqa: S608
}
_LINKS_SQL = """
INSERT INTO tokens_tokenapi (token_id, api_id, plan_id)
SELECT t.id, s.api_id, s.plan_id FROM tokens_accesstoken t
JOIN tokens_subscription s ON s.app_id = t.app_id
WHERE t.id >= %(start)s AND t.id < %(stop)s ORDER BY t.id, s.api_id
"""
_EVENTS_SQL = {
    vendor: f"""
INSERT INTO tokens_auditevent (token_id, action, actor_label, changes, token_version, created_at)
SELECT id, 'created', 'seed_demo', {changes}, 1, created_at FROM tokens_accesstoken
WHERE id >= %(start)s AND id < %(stop)s ORDER BY id
"""  # noqa: S608
    for vendor, changes in (
        ("sqlite", "json_object('owner', json_array(NULL, owner))"),
        ("postgresql", "jsonb_build_object('owner', jsonb_build_array(NULL, owner))"),
    )
}


@contextlib.contextmanager
def _bulk_load(models, *, indexes: bool, say=lambda text: None):
    """One transaction for a big load, with the tables' secondary indexes built after it.

    PostgreSQL: plain indexes, unique constraints and foreign keys are dropped and added
    back in the same transaction (adding them checks every row, once, in bulk, instead
    of a deferred trigger and random index insertion per row); any failure rolls the
    whole load back, constraints included. SQLite: plain indexes are dropped and rebuilt;
    foreign keys are switched off for the load and every row is checked with
    ``PRAGMA foreign_key_check`` before the commit; the plan-of-API triggers stay on.
    """
    tables = [model._meta.db_table for model in models]
    vendor = connection.vendor
    if vendor == "sqlite":
        with connection.cursor() as cursor:
            # A big page cache keeps the unique indexes (digest, public id) in memory
            # while they grow; a crash mid-seed loses only demo data.
            cursor.execute("PRAGMA cache_size = -1000000")
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA foreign_keys = OFF")  # outside a transaction only
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            restore = _drop_secondary(cursor, vendor, tables) if indexes else []
            yield
            started = time.monotonic()
            for sql in restore:
                cursor.execute(sql)
            if restore:
                took = time.monotonic() - started
                say(f"  {len(restore)} indexes and constraints built in {took:.1f} s")
            if vendor == "sqlite":
                for table in tables:
                    cursor.execute(f"PRAGMA foreign_key_check({table})")
                    if cursor.fetchone() is not None:
                        raise CommandError(f"Bulk rows break a foreign key of {table}.")
    finally:
        if vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA foreign_keys = ON")


def _drop_secondary(cursor, vendor: str, tables: list[str]) -> list[str]:
    """Drop the secondary indexes (PostgreSQL: also unique and foreign-key constraints) of
    ``tables``; returns the statements that create them again."""
    restore = []
    if vendor == "postgresql":
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)"
            " FROM pg_constraint c WHERE c.contype IN ('u', 'f')"
            " AND c.conrelid::regclass::text = ANY(%s)"
            " ORDER BY c.contype DESC",  # unique ones first: foreign keys may need them
            [tables],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i"
            " WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)"
            " AND i.indexname NOT IN (SELECT conname FROM pg_constraint)",
            [tables],
        )
        plain = cursor.fetchall()
        for table, name, _ in reversed(constraints):
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in plain:
            cursor.execute(f'DROP INDEX "{name}"')
        restore = [definition for _, definition in plain] + [
            f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
            for table, name, definition in constraints
        ]
    elif vendor == "sqlite":
        placeholders = ", ".join(["%s"] * len(tables))
        query = f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({placeholders})"  # noqa: E501, S608
        cursor.execute(query, tables)
        for name, definition in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
            restore.append(definition)
    return restore
