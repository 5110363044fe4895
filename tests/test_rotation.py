"""ROTATE's service: a new token like the old, the old one working until its stop time,
then refused at every gateway check and recorded as revoked, reason "rotated"."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.factories import AppFactory, PlanFactory, UserFactory, make_token
from tokens import services
from tokens.gateway import cache
from tokens.gateway import check as gateway
from tokens.gateway.cache import CachePurgeFailed
from tokens.models import AccessToken, AuditAction, TokenOrigin, TokenRotation
from tokens.services import rotation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

AUTH_URL = "/gateway/auth"
HOUR = timedelta(hours=1)


@pytest.fixture
def alice():
    return UserFactory(username="alice")


@pytest.fixture
def gold():
    return PlanFactory(name="Gold", api__name="Payments", api__base_path="/pay")


@pytest.fixture
def old(gold):
    return make_token(
        app=AppFactory(name="Shop"),
        owner="Ada Lovelace",
        plans=[gold],
        extra_fields=[["Ticket", "T-1"], ["Team", "Pay"]],
        expires_at=timezone.now() + timedelta(days=30),
    )


def gateway_status(client, secret: str) -> int:
    return client.get(
        AUTH_URL, HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_ORIGINAL_URI="/pay/charges"
    ).status_code


def clock_at(monkeypatch, when) -> None:
    """Every gateway check from now on happens at ``when``."""
    monkeypatch.setattr(gateway, "now", lambda: when.timestamp())


def rotate(token, grace=HOUR, actor=None, **kwargs):
    return services.token_rotate(token=token, grace=grace, actor=actor, **kwargs)


# --- the new token --------------------------------------------------------------------------


def test_the_new_token_has_the_old_ones_app_owner_extra_fields_plans_and_expiry(old, alice):
    token, secret = old
    expiry = token.expires_at

    issued = rotate(token, actor=alice)

    new = AccessToken.objects.get(pk=issued.token.pk)
    assert new.pk != token.pk and issued.secret != secret
    assert new.digest != token.digest
    assert new.app == token.app
    assert new.owner == "Ada Lovelace"
    assert new.extra_fields == [["Ticket", "T-1"], ["Team", "Pay"]]
    assert list(new.api_links.values_list("api__base_path", "plan__name")) == [("/pay", "Gold")]
    assert new.expires_at == expiry
    assert new.origin == TokenOrigin.PORTAL and new.created_by == alice
    assert new.status == "active"


def test_the_new_token_keeps_the_old_tokens_expiry_not_the_stop_time(old):
    token, _ = old
    expiry = token.expires_at

    issued = rotate(token, grace=HOUR)

    assert issued.token.expires_at == expiry
    token.refresh_from_db()
    assert token.expires_at < expiry  # the old one stops in an hour


def test_a_token_that_never_expires_is_replaced_by_one_that_never_expires(gold):
    token, _ = make_token(plans=[gold])

    issued = rotate(token, grace=HOUR)

    assert issued.token.expires_at is None


def test_the_rotation_is_recorded_with_its_stop_time_and_who_rotated(old, alice):
    token, _ = old
    before = timezone.now()

    issued = rotate(token, grace=timedelta(hours=24), actor=alice)

    record = TokenRotation.objects.get(old=token)
    assert record.new == issued.token
    assert record.actor_label == "alice"
    assert (
        before + timedelta(hours=24) <= record.old_stops_at <= timezone.now() + timedelta(hours=24)
    )


# --- the old token at the gateway -----------------------------------------------------------


def test_with_a_grace_period_the_old_token_works_until_its_stop_time_then_gets_401(
    client, monkeypatch, old
):
    token, old_secret = old
    issued = rotate(token, grace=HOUR)
    stops_at = TokenRotation.objects.get(old=token).old_stops_at
    token.refresh_from_db()

    assert token.expires_at == stops_at
    assert token.status == "active"
    assert gateway_status(client, old_secret) == 200
    assert gateway_status(client, issued.secret) == 200

    clock_at(monkeypatch, stops_at - timedelta(seconds=1))
    assert gateway_status(client, old_secret) == 200

    clock_at(monkeypatch, stops_at + timedelta(seconds=1))
    assert gateway_status(client, old_secret) == 401
    assert gateway_status(client, issued.secret) == 200


def test_a_cached_answer_for_the_old_token_is_not_served_past_its_stop_time(
    transactional_db, client, monkeypatch, old
):
    token, old_secret = old
    assert gateway_status(client, old_secret) == 200  # cached, with the 30-day expiry
    assert cache.read(cache.token_cache_key(token.digest)) not in (None, cache.PURGED)

    rotate(token, grace=HOUR)  # commits, then purges
    stops_at = TokenRotation.objects.get(old=token).old_stops_at

    assert cache.read(cache.token_cache_key(token.digest)) == cache.PURGED
    assert gateway_status(client, old_secret) == 200  # cached again, with the stop time
    clock_at(monkeypatch, stops_at + timedelta(seconds=1))
    assert gateway_status(client, old_secret) == 401


def test_with_no_grace_the_old_token_is_revoked_at_once_reason_rotated(client, old, alice):
    token, old_secret = old

    issued = rotate(token, grace=timedelta(0), actor=alice)

    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revocation_reason == "rotated"
    assert token.revoked_by == "alice"
    assert TokenRotation.objects.get(old=token).old_stops_at == token.revoked_at
    assert gateway_status(client, old_secret) == 401
    assert gateway_status(client, issued.secret) == 200


def test_the_stop_time_is_never_later_than_the_old_tokens_own_expiry(gold):
    expiry = timezone.now() + timedelta(minutes=30)
    token, _ = make_token(plans=[gold], expires_at=expiry)

    rotate(token, grace=timedelta(days=7))

    token.refresh_from_db()
    assert token.expires_at == expiry
    assert TokenRotation.objects.get(old=token).old_stops_at == expiry


# --- when rotating is refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("oauth", "issued by the OAuth flow"),
        ("expired", "This token is expired; only an active token can be rotated."),
        ("revoked", "This token is revoked; only an active token can be rotated."),
        ("inactive app", "The app Closed is deactivated"),
    ],
)
def test_only_an_active_portal_token_of_an_active_app_can_be_rotated(gold, kind, message):
    app = AppFactory(name="Closed", is_active=kind != "inactive app")
    token, _ = make_token(
        app=app,
        plans=[gold],
        origin=TokenOrigin.OAUTH if kind == "oauth" else TokenOrigin.PORTAL,
        expired=kind == "expired",
        revoked=kind == "revoked",
    )
    before = AccessToken.objects.count()

    with pytest.raises(services.TokenNotRotatable) as refused:
        rotate(token)

    assert message in refused.value.message
    assert AccessToken.objects.count() == before
    assert not TokenRotation.objects.exists()
    assert services.rotation_refusal(token) == refused.value.message


def test_rotating_a_rotated_token_again_is_refused_naming_its_replacement(old):
    token, _ = old
    issued = rotate(token, grace=HOUR)
    before = AccessToken.objects.count()

    with pytest.raises(services.TokenNotRotatable) as refused:
        rotate(AccessToken.objects.get(pk=token.pk), grace=HOUR)

    assert refused.value.message == (
        f"This token was already rotated: it is replaced by {issued.token.masked_code}."
    )
    assert refused.value.replacement == issued.token
    assert AccessToken.objects.count() == before
    assert not services.can_be_rotated(token)
    assert services.can_be_rotated(issued.token)  # the new one can be rotated in turn


def test_the_database_lets_only_one_rotation_of_a_token_through(old, monkeypatch):
    """Two rotations that both passed the check (as concurrent ones can on a database
    without row locks): the one-to-one on the old token refuses the second."""
    token, _ = old
    first = rotate(token, grace=HOUR)
    monkeypatch.setattr(rotation, "rotation_refusal", lambda token, now=None: None)
    before = AccessToken.objects.count()

    with pytest.raises(services.TokenNotRotatable) as refused:
        rotate(AccessToken.objects.get(pk=token.pk), grace=HOUR)

    assert refused.value.message == (
        "This token was rotated by someone else a moment ago: it is replaced by "
        f"{first.token.masked_code}. No second new token was made."
    )
    assert AccessToken.objects.count() == before  # the second new token was rolled back
    assert TokenRotation.objects.filter(old=token).count() == 1


def test_a_negative_grace_is_refused(old):
    with pytest.raises(services.TokenServiceError, match="cannot be negative"):
        rotate(old[0], grace=timedelta(seconds=-1))
    assert not TokenRotation.objects.exists()


# --- audit and log --------------------------------------------------------------------------


def test_both_histories_show_the_rotation(old, alice):
    token, _ = old
    expiry = token.expires_at

    issued = rotate(token, grace=HOUR, actor=alice, remote_addr="192.0.2.7")

    stops_at = TokenRotation.objects.get(old=token).old_stops_at
    rotated = token.events.get(action=AuditAction.ROTATED)
    assert rotated.changes == {
        "rotated_to": [None, issued.token.masked_code],
        "expires_at": [expiry.isoformat(), stops_at.isoformat()],
    }
    assert (rotated.actor, rotated.actor_label, rotated.remote_addr) == (
        alice,
        "alice",
        "192.0.2.7",
    )
    token.refresh_from_db()
    assert rotated.token_version == token.version == 2
    created = issued.token.events.get(action=AuditAction.CREATED)
    assert created.changes["rotated_from"] == [None, token.masked_code]
    assert created.changes["owner"] == [None, "Ada Lovelace"]


def test_no_secret_is_kept_in_either_history(old):
    token, old_secret = old
    issued = rotate(token, grace=timedelta(0))

    for event in [*token.events.all(), *issued.token.events.all()]:
        text = str(event.changes)
        assert old_secret not in text and issued.secret not in text


def test_the_rotation_is_logged_as_a_security_event(transactional_db, old, alice, caplog):
    token, _ = old
    caplog.set_level("INFO", logger="portal.middleware")

    issued = rotate(token, grace=HOUR, actor=alice)

    [line] = [
        r.security
        for r in caplog.records
        if getattr(r, "security", {}).get("event") == "authn_token_rotated"
    ]
    assert line["token_id"] == str(token.public_id)
    assert line["new_token"] == str(issued.token.public_id)
    assert line["actor"] == "alice"


def test_a_rotation_whose_purge_fails_still_hands_over_the_new_secret(
    transactional_db, old, monkeypatch
):
    token, _ = old

    def down(digest):
        raise CachePurgeFailed("the token's cached answer")

    monkeypatch.setattr(cache, "purge_token", down)

    with pytest.raises(services.RotatedButNotPurged) as failed:
        rotate(token, grace=timedelta(0))

    issued = failed.value.issued
    assert issued.secret and issued.token.pk
    assert "could not be reached" in failed.value.message
    assert TokenRotation.objects.get(old=token).new == issued.token  # committed
    assert AccessToken.objects.get(pk=token.pk).status == "revoked"


# --- the end of the grace period ------------------------------------------------------------


def test_finishing_due_rotations_revokes_the_old_token_at_its_stop_time(old, alice):
    token, _ = old
    rotate(token, grace=HOUR, actor=alice)
    stops_at = TokenRotation.objects.get(old=token).old_stops_at

    assert services.finish_due_rotations(now=stops_at - timedelta(seconds=1)) == 0
    token.refresh_from_db()
    assert token.revoked_at is None

    assert services.finish_due_rotations(now=stops_at + timedelta(minutes=5)) == 1
    token.refresh_from_db()
    assert token.status == "revoked"
    assert (token.revoked_at, token.revoked_by, token.revocation_reason) == (
        stops_at,
        "alice",
        "rotated",
    )
    revoked = token.events.get(action=AuditAction.REVOKED)
    assert revoked.changes == {
        "revoked_at": [None, stops_at.isoformat()],
        "revocation_reason": [None, "rotated"],
    }
    assert revoked.token_version == token.version == 3


def test_finishing_is_idempotent(old):
    token, _ = old
    rotate(token, grace=HOUR)
    later = timezone.now() + timedelta(hours=2)

    assert services.finish_due_rotations(now=later) == 1
    revoked = AccessToken.objects.get(pk=token.pk)
    assert services.finish_due_rotations(now=later) == 0

    assert AccessToken.objects.get(pk=token.pk).version == revoked.version
    assert token.events.filter(action=AuditAction.REVOKED).count() == 1


def test_a_token_revoked_during_its_grace_period_keeps_its_revocation(old, alice):
    token, _ = old
    rotate(token, grace=HOUR)
    services.token_revoke(token=token, actor=alice, reason="leaked after all")

    assert services.finish_due_rotations(now=timezone.now() + timedelta(hours=2)) == 0
    token.refresh_from_db()
    assert token.revocation_reason == "leaked after all"


def test_the_end_is_scheduled_as_a_task_at_the_stop_time(transactional_db, old):
    token, _ = old

    rotate(token, grace=HOUR)

    stops_at = TokenRotation.objects.get(old=token).old_stops_at
    [scheduled] = DBTaskResult.objects.all()
    assert scheduled.task_path == "tokens.services.rotation.finish_rotations"
    assert scheduled.run_after == stops_at


def test_no_task_is_scheduled_when_the_old_token_stops_at_once(transactional_db, old):
    rotate(old[0], grace=timedelta(0))

    assert not DBTaskResult.objects.exists()


def test_a_failure_to_schedule_the_task_does_not_undo_the_rotation(
    transactional_db, old, monkeypatch, caplog
):
    token, _ = old

    class QueueDown:
        def using(self, **kwargs):
            raise RuntimeError("queue down")

    monkeypatch.setattr(rotation, "finish_rotations", QueueDown())
    rotate(token, grace=HOUR)

    assert TokenRotation.objects.filter(old=token).exists()
    assert "Could not schedule the end of a rotation" in caplog.text


def test_the_job_worker_runs_the_scheduled_end_once_it_is_due(transactional_db, old):
    token, _ = old
    rotate(token, grace=timedelta(seconds=1))

    call_command("db_worker", batch=True, startup_delay=False, reload=False, verbosity=0)
    token.refresh_from_db()
    assert token.revoked_at is None  # not due yet: the worker left the task queued

    time.sleep(1.1)
    call_command("db_worker", batch=True, startup_delay=False, reload=False, verbosity=0)
    token.refresh_from_db()
    assert token.status == "revoked" and token.revocation_reason == "rotated"
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"


def test_a_failed_purge_does_not_stop_the_others_from_finishing(
    transactional_db, gold, monkeypatch, caplog
):
    tokens = [make_token(plans=[gold])[0] for _ in range(2)]
    for token in tokens:
        rotate(token, grace=HOUR)

    def down(digest):
        raise CachePurgeFailed("the token's cached answer")

    monkeypatch.setattr(cache, "purge_token", down)

    assert services.finish_due_rotations(now=timezone.now() + 2 * HOUR) == 2
    assert all(AccessToken.objects.get(pk=t.pk).status == "revoked" for t in tokens)
    assert "A rotated-out token is revoked, but" in caplog.text
