"""``seed_demo`` tells the truth: no token is "last used" before it was made, after it
expired or was revoked, or in the future (and no history entry is dated outside the
token's life); its own output is on stdout with the logins last, under the address
given by ``--url`` (or the hint to use the one runserver prints), and the security log's
lines of the seeding are left out unless asked for."""

import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F, Q
from django.utils import timezone

from tokens.models import AccessToken, AuditEvent, TokenStatus

pytestmark = pytest.mark.usefixtures("allow_demo")

LOGINS = [
    "  admin   / portal-demo-2026   (Portal administrators: the portal)",
    "  support / portal-demo-2026   (Support staff: Django admin at /admin/)",
]


@pytest.fixture
def allow_demo(monkeypatch):
    monkeypatch.setenv("TOKEN_PORTAL_ALLOW_DEMO", "1")


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def assert_timelines_hold() -> None:
    now = timezone.now()
    tokens = AccessToken.objects.all()
    used = tokens.filter(last_used_at__isnull=False)
    assert used.exists() and used.count() < tokens.count()  # some used, some never
    wrong = {
        "used before it was created": used.filter(last_used_at__lt=F("created_at")),
        "used after it was revoked": used.filter(last_used_at__gt=F("revoked_at")),
        "used after it expired": used.filter(last_used_at__gt=F("expires_at")),
        "used in the future": used.filter(last_used_at__gt=now),
        "revoked before it was created": tokens.filter(revoked_at__lt=F("created_at")),
        "revoked after it expired": tokens.filter(revoked_at__gt=F("expires_at")),
        "expiring before it was created": tokens.filter(expires_at__lt=F("created_at")),
        "created in the future": tokens.filter(created_at__gt=now),
        "history before the token": AuditEvent.objects.filter(
            created_at__lt=F("token__created_at")
        ),
        "history after the revocation": AuditEvent.objects.filter(
            Q(created_at__gt=F("token__revoked_at")) & ~Q(action="revoked")
        ),
        "history in the future": AuditEvent.objects.filter(created_at__gt=now),
    }
    found = {what: list(rows.values_list("pk", flat=True)[:5]) for what, rows in wrong.items()}
    assert {what: pks for what, pks in found.items() if pks} == {}


@pytest.mark.django_db
def test_the_demo_tokens_have_lives_that_could_have_happened():
    seed("--quiet-login")
    assert_timelines_hold()
    statuses = {token.status for token in AccessToken.objects.all()}
    assert statuses == set(TokenStatus)
    # An expired token was used while it was active, a revoked one before its revocation.
    expired = AccessToken.objects.filter(expires_at__lt=timezone.now(), last_used_at__isnull=False)
    assert expired.exists()
    assert AccessToken.objects.filter(revoked_at__isnull=False, last_used_at__isnull=False)


# The bulk path tunes SQLite with PRAGMAs that cannot run inside a transaction.
@pytest.mark.django_db(transaction=True)
def test_the_bulk_tokens_have_lives_that_could_have_happened():
    seed("--tokens", "2000", "--quiet-login")
    assert AccessToken.objects.count() == 2000
    assert_timelines_hold()
    bulk = AccessToken.objects.filter(events__actor_label="seed_demo")
    assert bulk.filter(last_used_at__isnull=False).exists()
    assert bulk.filter(last_used_at__isnull=True).exists()


@pytest.mark.django_db
def test_the_logins_come_last_with_the_hint_to_use_runserver_s_address():
    lines = seed().splitlines()
    assert lines[-3] == (
        "Open the address runserver prints (http://127.0.0.1:8000/ by default) "
        "and log in at /accounts/login/ as"
    )
    assert lines[-2:] == LOGINS
    assert lines[0].startswith("Demo platform ready: ")


@pytest.mark.django_db
def test_the_logins_follow_the_address_given():
    lines = seed("--url", "http://127.0.0.1:8765/").splitlines()
    assert lines[-3:] == ["Log in at http://127.0.0.1:8765/accounts/login/ as", *LOGINS]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://example.com", "http://", "javascript:x"])
def test_a_bad_address_is_refused_before_anything_is_seeded(url):
    with pytest.raises(CommandError, match="--url must be an http:// or https:// address"):
        seed("--url", url)
    assert not AccessToken.objects.exists()


# Really committed: the security log writes its lines once the transaction commits.
@pytest.mark.django_db(transaction=True)
def test_the_seeding_s_security_log_lines_are_left_out(caplog):
    caplog.set_level("INFO")
    seed("--quiet-login")
    assert not [r for r in caplog.records if r.levelname == "INFO"]
    # And logging works as before once the command is done.
    logging.getLogger("portal.middleware").info("after the seed")
    assert [r.getMessage() for r in caplog.records] == ["after the seed"]


@pytest.mark.django_db(transaction=True)
def test_the_seeding_s_security_log_lines_show_with_verbosity_2(caplog):
    caplog.set_level("INFO")
    seed("--quiet-login", "--verbosity", "2")
    events = {getattr(r, "security", {}).get("event") for r in caplog.records}
    assert "authn_token_created" in events and "authn_token_revoked" in events
