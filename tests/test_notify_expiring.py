"""``manage.py notify_expiring``: the contacts of Active tokens about to expire, and the
administrators who opted in, e-mailed once per token per threshold."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal import timefmt
from tests.factories import UserFactory, make_token
from tokens import services
from tokens.models import AccessToken, ExpiryNotice, NotificationSettings
from tokens.services import notices

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def _expiring(days, owner="ada@example.test", **kwargs):
    token, secret = make_token(
        owner=owner, expires_at=timezone.now() + timedelta(days=days, hours=-1), **kwargs
    )
    return token, secret


def _run(*args) -> str:
    out = StringIO()
    call_command("notify_expiring", *args, stdout=out)
    return out.getvalue()


def _admin(username="boss", opted_in=True, **kwargs):
    user = UserFactory(username=username, groups=["Portal administrators"], **kwargs)
    NotificationSettings.objects.create(user=user, expiring_tokens=opted_in)
    return user


def _to(address):
    return [message for message in mail.outbox if message.to == [address]]


# --- Who is told -----------------------------------------------------------------------------


def test_the_owner_is_mailed_when_it_is_an_email_address(settings):
    token, secret = _expiring(5, owner="ada@example.test")

    out = _run()

    (message,) = mail.outbox
    assert message.to == ["ada@example.test"]
    assert token.masked_code in message.subject
    assert "within 7 days" in message.subject
    assert token.masked_code in message.body
    token.refresh_from_db()
    assert f"at {timefmt.exact(token.expires_at)}." in message.body  # as the screens show it
    for text in (secret, token.digest):
        assert text not in message.subject + message.body
    assert f"sent to ada@example.test: {token.masked_code} (within 7 days)" in out
    assert "1 token reached a threshold" in out


def test_an_extra_field_named_email_in_any_case_is_the_contact_when_the_owner_is_not_one():
    _expiring(
        5,
        owner="Team Payments",
        extra_fields=[["team", "core"], ["E-Mail", "no"], ["EMAIL", "pay@example.test"]],
    )

    _run()

    (message,) = mail.outbox
    assert message.to == ["pay@example.test"]


def test_a_token_without_contact_is_mailed_to_nobody_but_counted():
    _expiring(5, owner="Team Payments", extra_fields=[["email", "not an address"]])

    out = _run()

    assert mail.outbox == []
    assert "1 without a contact address" in out


def test_opted_in_administrators_get_one_digest_listing_every_token():
    first, _ = _expiring(3, owner="one@example.test")
    second, _ = _expiring(12, owner="two@example.test")
    third, _ = _expiring(25, owner="Team without address")
    _admin("boss", email="boss@example.test")
    _admin("quiet", opted_in=False, email="quiet@example.test")
    UserFactory(username="no-settings", groups=["Portal administrators"])
    support = UserFactory(username="sam", groups=["Support staff"], email="sam@example.test")
    NotificationSettings.objects.create(user=support, expiring_tokens=True)

    out = _run()

    (digest,) = _to("boss@example.test")
    for token in (first, second, third):
        assert token.masked_code in digest.body
    assert digest.subject == "3 access tokens about to expire"
    assert "within 7 days" in digest.body and "within 14 days" in digest.body
    assert "within 30 days" in digest.body
    assert _to("quiet@example.test") == []
    assert _to("no-settings@example.test") == []
    assert _to("sam@example.test") == []  # not an administrator: never on the digest
    assert len(mail.outbox) == 3  # two contacts and one digest
    assert "sent to boss@example.test: " in out and "(digest)" in out


def test_no_digest_when_no_token_reached_a_threshold():
    _admin("boss", email="boss@example.test")
    _expiring(45)

    out = _run()

    assert mail.outbox == []
    assert "0 tokens reached a threshold" in out


def test_an_inactive_or_address_less_administrator_gets_no_digest():
    _expiring(5)
    _admin("gone", email="gone@example.test", is_active=False)
    _admin("blank", email="")

    _run()

    assert [m.to for m in mail.outbox] == [["ada@example.test"]]


# --- Which tokens, and how often ----------------------------------------------------------------


def test_expired_revoked_and_never_expiring_tokens_get_nothing():
    make_token(owner="expired@example.test", expired=True)
    revoked, _ = _expiring(5, owner="revoked@example.test")
    services.token_revoke(
        token=revoked, actor=None, reason="x", channel=services.RevokeChannel.INCIDENT
    )
    make_token(owner="forever@example.test")
    _expiring(31, owner="later@example.test")

    _run()

    assert mail.outbox == []
    assert ExpiryNotice.objects.count() == 0


def test_a_second_run_sends_nothing():
    _expiring(5)
    _admin("boss", email="boss@example.test")
    _run()
    assert len(mail.outbox) == 2

    out = _run()

    assert len(mail.outbox) == 2
    assert "0 tokens reached a threshold" in out


def test_one_mail_for_the_smallest_threshold_the_larger_ones_recorded_as_covered():
    token, _ = _expiring(5)

    _run()

    assert len(mail.outbox) == 1
    notices_ = {n.threshold_days: n.recipients for n in ExpiryNotice.objects.filter(token=token)}
    assert notices_ == {7: 1, 14: 0, 30: 0}


def test_each_threshold_is_mailed_once_as_the_token_comes_closer():
    token, _ = _expiring(25)
    expires = token.expires_at

    for days_left, expected in [(25, 30), (20, None), (13, 14), (10, None), (6, 7), (1, None)]:
        mail.outbox.clear()
        services.tokens_notify_expiring(now=expires - timedelta(days=days_left, hours=1))
        subjects = [m.subject for m in mail.outbox]
        if expected is None:
            assert subjects == [], days_left
        else:
            assert subjects == [f"Access token {token.masked_code} expires within {expected} days"]
    assert set(ExpiryNotice.objects.values_list("threshold_days", flat=True)) == {7, 14, 30}


def test_days_chooses_the_thresholds():
    _expiring(2)
    _expiring(10, owner="bob@example.test")

    out = _run("--days", "3")

    assert [m.to for m in mail.outbox] == [["ada@example.test"]]
    assert "within 3 days" in out
    assert set(ExpiryNotice.objects.values_list("threshold_days", flat=True)) == {3}


@pytest.mark.parametrize("bad", ["0", "-1", "x", "99999"])
def test_bad_days_are_a_clear_error(bad):
    with pytest.raises(CommandError):
        call_command("notify_expiring", "--days", bad, stdout=StringIO(), stderr=StringIO())


def test_dry_run_prints_without_sending_or_recording():
    token, _ = _expiring(5)
    _admin("boss", email="boss@example.test")

    out = _run("--dry-run")

    assert mail.outbox == []
    assert ExpiryNotice.objects.count() == 0
    assert f"would send to ada@example.test: {token.masked_code} (within 7 days)" in out
    assert "would send to boss@example.test" in out
    assert "dry run" in out
    _run()
    assert len(mail.outbox) == 2  # the dry run left it all to the real one


def test_a_token_another_run_claimed_meanwhile_is_not_mailed_again(monkeypatch):
    token, _ = _expiring(5)
    real_claim = notices._claim

    def claimed_by_another_run_first(token_, due, recipients, now):
        ExpiryNotice.objects.create(token=token_, threshold_days=due[0])
        return real_claim(token_, due, recipients, now)

    monkeypatch.setattr(notices, "_claim", claimed_by_another_run_first)

    run = services.tokens_notify_expiring()

    assert mail.outbox == []
    assert run.tokens == []
    assert ExpiryNotice.objects.filter(token=token).count() == 1


def test_a_mail_that_cannot_be_sent_is_not_recorded_and_is_retried_next_run(monkeypatch):
    token, _ = _expiring(5)

    def broken_send(self, fail_silently=False):
        raise OSError("SMTP down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", broken_send)
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("notify_expiring", stdout=StringIO(), stderr=err)
    assert "not sent to ada@example.test" in err.getvalue()
    assert ExpiryNotice.objects.count() == 0

    monkeypatch.undo()
    _run()
    sent = [m.to for m in mail.outbox]
    assert sent == [["ada@example.test"]]
    assert ExpiryNotice.objects.filter(token=token).count() == 3


def test_contact_of():
    token = AccessToken(owner=" ada@example.test ", extra_fields=[["email", "x@example.test"]])
    assert notices.contact_of(token) == "ada@example.test"
    token.owner = "Ada"
    assert notices.contact_of(token) == "x@example.test"
    token.extra_fields = []
    assert notices.contact_of(token) is None


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_mail_each_token_once(needs_postgresql):
    import threading

    from django.db import connection

    tokens = [_expiring(5, owner=f"c{n}@example.test")[0] for n in range(20)]
    start = threading.Barrier(2)
    errors = []

    def run():
        try:
            start.wait()
            services.tokens_notify_expiring()
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(m.to[0] for m in mail.outbox) == sorted(t.owner for t in tokens)
    assert ExpiryNotice.objects.filter(threshold_days=7).count() == 20
