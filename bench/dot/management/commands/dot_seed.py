"""Fill django-oauth-toolkit's tables with N access tokens (bulk), like the portal's bench.

Writes a JSON file with a bearer token allowed the ``introspection`` scope (DOT's
documented way to call its introspection endpoint) and the values of ``--known`` tokens.
"""

import hashlib
import json
import secrets
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application


def _token(value, application, now, scope="read"):
    return AccessToken(
        token=value,
        token_checksum=hashlib.sha256(value.encode()).hexdigest(),
        application=application,
        expires=now + timedelta(days=1),
        scope=scope,
    )


class Command(BaseCommand):
    help = "Seed django-oauth-toolkit with --tokens access tokens for the baseline bench."

    def add_arguments(self, parser):
        parser.add_argument("--tokens", type=int, required=True)
        parser.add_argument("--known", type=int, default=2000)
        parser.add_argument("--out", required=True)

    def handle(self, *args, tokens, known, out, **options):
        now = timezone.now()
        application = Application.objects.create(
            name="Bench client",
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        )
        caller = secrets.token_urlsafe(32)
        known_values = [secrets.token_urlsafe(32) for _ in range(known)]
        with transaction.atomic():
            AccessToken.objects.bulk_create(
                [_token(caller, application, now, "introspection")]
                + [_token(value, application, now) for value in known_values]
            )
        missing = tokens - AccessToken.objects.count()
        columns = "token token_checksum expires scope application_id created updated resource"
        adapt = connection.ops.adapt_datetimefield_value
        batch = 50_000
        while missing > 0:
            rows = []
            for _ in range(min(batch, missing)):
                value = secrets.token_urlsafe(32)
                rows.append(
                    (
                        value,
                        hashlib.sha256(value.encode()).hexdigest(),
                        adapt(now + timedelta(days=1)),
                        "read",
                        application.pk,
                        adapt(now),
                        adapt(now),
                        "[]",
                    )
                )
            with transaction.atomic(), connection.cursor() as cursor:
                names = ", ".join(columns.split())
                if connection.vendor == "postgresql":
                    sql = f"COPY oauth2_provider_accesstoken ({names}) FROM STDIN"
                    with cursor.cursor.copy(sql) as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    marks = ", ".join(["%s"] * len(rows[0]))
                    cursor.executemany(
                        f"INSERT INTO oauth2_provider_accesstoken ({names}) VALUES ({marks})",  # noqa: S608
                        rows,
                    )
            missing -= len(rows)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE oauth2_provider_accesstoken")
        with open(out, "w") as file:
            json.dump({"caller": caller, "secrets": known_values}, file)
        self.stdout.write(f"DOT: {AccessToken.objects.count()} tokens")
