"""E-mails about Active tokens that are about to expire (``manage.py notify_expiring``),
and who wants them.

**Once per token per threshold.** Thresholds are days before expiry (7, 14 and 30 by
default). A token is due for the smallest threshold it is within: one expiring in 5 days
gets one mail "within 7 days", and its 14- and 30-day notices are recorded at the same
time as *covered* (``ExpiryNotice.recipients`` 0), so that it is never mailed three times
at once. A token first seen at 25 days gets its 30-day mail, then its 14-day one when it
is 14 days away, then its 7-day one. Expired, revoked and never-expiring tokens get none.

**Who.** The token's contact: its owner when that is an e-mail address, else the value of
an extra field named ``email`` (any case), when that is one. And the portal
administrators who opted in (``NotificationSettings.expiring_tokens``: active users with
an e-mail address, members of "Portal administrators" or superusers): one digest per run
listing every token that reached a threshold in it, not a mail per token.

**Safe from cron and concurrently.** Each token is decided in its own transaction: its
notices are inserted (the unique constraint (token, threshold) lets one run win; on
PostgreSQL a concurrent insert waits for the winner's commit, then fails and that run
skips the token), then its contact's mail is sent, then the transaction commits. A mail
that cannot be sent rolls the notices back, so the next run tries again (a crash between
sending and commit could repeat one mail: at-least-once for contacts). The administrators'
digest is sent after the tokens' commits: at most once (a failed digest is reported, not
retried; the tokens it would list are in the admin's Expiry notices).

Never a secret in a mail: tokens are named by their masked code.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from portal import timefmt
from tokens.groups import ADMINISTRATORS
from tokens.models import EXPIRING_SOON_DAYS, AccessToken, ExpiryNotice, NotificationSettings

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = (EXPIRING_SOON_DAYS, 14, 30)  # the first: the badge "Expires soon"


@dataclass(frozen=True)
class SentMail:
    recipient: str
    codes: tuple[str, ...]
    threshold_days: int | None  # None: the administrators' digest (tokens of any threshold)


@dataclass
class NoticeRun:
    """What a run of ``tokens_notify_expiring`` did (or, dry, would do)."""

    dry_run: bool
    thresholds: tuple[int, ...]
    tokens: list[tuple[AccessToken, int]] = field(default_factory=list)  # (token, threshold)
    mails: list[SentMail] = field(default_factory=list)
    without_contact: int = 0
    failed: list[str] = field(default_factory=list)  # what could not be sent, and why


def contact_of(token: AccessToken) -> str | None:
    """The e-mail address to tell about ``token``: its owner, or its extra field "email"."""
    candidates = [token.owner] + [
        value for name, value in token.extra_field_pairs() if name.strip().lower() == "email"
    ]
    for candidate in candidates:
        address = candidate.strip()
        try:
            validate_email(address)
        except ValidationError:
            continue
        return address
    return None


def _notifiable_administrators():
    return (
        get_user_model()
        .objects.filter(Q(groups__name=ADMINISTRATORS) | Q(is_superuser=True), is_active=True)
        .exclude(email="")
    )


def can_receive_notifications(user) -> bool:
    """Whether ``user`` may choose e-mail notifications (the opt-in page)."""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.groups.filter(name=ADMINISTRATORS).exists())
    )


def notification_recipients() -> list[str]:
    """The administrators' addresses that asked for the expiring tokens digest."""
    users = _notifiable_administrators().filter(notification_settings__expiring_tokens=True)
    return sorted(set(users.values_list("email", flat=True)))


def notification_settings_of(user) -> NotificationSettings:
    return NotificationSettings.objects.filter(user=user).first() or NotificationSettings(user=user)


def notification_settings_update(*, user, expiring_tokens: bool) -> NotificationSettings:
    settings, _ = NotificationSettings.objects.update_or_create(
        user=user, defaults={"expiring_tokens": expiring_tokens}
    )
    return settings


def _due(token: AccessToken, thresholds: Sequence[int], now: datetime) -> list[int]:
    """The thresholds ``token`` is within, smallest first."""
    return [days for days in thresholds if token.expires_at <= now + timedelta(days=days)]


def _mail_to_contact(token: AccessToken, threshold: int, now: datetime) -> EmailMessage:
    left = token.expires_at - now
    days = max(0, left.days)
    when = "in less than a day" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
    apis = ", ".join(link.api.name for link in token.api_links.all()) or "none"
    body = (
        f"The access token {token.masked_code} expires {when}, "
        f"at {timefmt.exact(token.expires_at)}.\n\n"
        f"App: {token.app_name}\nOwner: {token.owner}\nAPIs: {apis}\n\n"
        "Ask a portal administrator for a new token before then: requests with an expired "
        "token are refused (HTTP 401).\n"
    )
    return EmailMessage(
        subject=f"Access token {token.masked_code} expires within {threshold} days",
        body=body,
        to=[contact_of(token)],
    )


def _digest(tokens: list[tuple[AccessToken, int]], recipient: str) -> EmailMessage:
    lines = [
        f"- {token.masked_code} ({token.app_name}, owner {token.owner}): expires "
        f"{timefmt.exact(token.expires_at)}, within {days} days"
        for token, days in tokens
    ]
    count = len(tokens)
    return EmailMessage(
        subject=f"{count} access token{'s' if count != 1 else ''} about to expire",
        body="These Active tokens reached an expiry threshold:\n\n" + "\n".join(lines) + "\n",
        to=[recipient],
    )


def _claim(token: AccessToken, due: list[int], recipients: int, now: datetime) -> bool:
    """Record ``token``'s notices of ``due`` (the first sent, the others covered); False
    when another run recorded the first one already."""
    first, *covered = due
    try:
        with transaction.atomic():
            ExpiryNotice.objects.create(
                token=token, threshold_days=first, sent_at=now, recipients=recipients
            )
    except IntegrityError:
        return False
    ExpiryNotice.objects.bulk_create(
        [ExpiryNotice(token=token, threshold_days=d, sent_at=now) for d in covered],
        ignore_conflicts=True,
    )
    return True


def tokens_notify_expiring(
    *, thresholds: Iterable[int] = DEFAULT_THRESHOLDS, dry_run: bool = False, now=None
) -> NoticeRun:
    """Mail each Active token's contact once per threshold it reaches, and the opted-in
    administrators one digest of them (see the module's docstring)."""
    thresholds = tuple(sorted({int(days) for days in thresholds}))
    if not thresholds or thresholds[0] < 1:
        raise ValueError("Thresholds are whole days, at least 1.")
    now = now or timezone.now()
    run = NoticeRun(dry_run=dry_run, thresholds=thresholds)
    candidates = (
        AccessToken.objects.expiring_within(thresholds[-1], now=now)
        .prefetch_related("api_links__api", "expiry_notices")
        .order_by("expires_at", "id")
    )
    # Read whole before writing: SQLite's cursor would see the notices written meanwhile.
    for token in list(candidates):
        due = _due(token, thresholds, now)
        recorded = {notice.threshold_days for notice in token.expiry_notices.all()}
        if due[0] in recorded:
            continue  # mailed for this threshold (or a smaller one covered it) already
        due = [days for days in due if days not in recorded]
        contact = contact_of(token)
        if contact is None:
            run.without_contact += 1
        if dry_run:
            run.tokens.append((token, due[0]))
            if contact:
                run.mails.append(SentMail(contact, (token.masked_code,), due[0]))
            continue
        try:
            with transaction.atomic():
                if not _claim(token, due, 1 if contact else 0, now):
                    continue  # another run has it
                if contact:
                    _mail_to_contact(token, due[0], now).send()
        except Exception as error:  # noqa: BLE001 (an SMTP failure of any kind: retried next run)
            logger.warning("expiry notice of %s not sent: %s", token.masked_code, error)
            run.failed.append(f"{contact}: {token.masked_code} ({type(error).__name__})")
            continue
        run.tokens.append((token, due[0]))
        if contact:
            run.mails.append(SentMail(contact, (token.masked_code,), due[0]))
    if run.tokens:
        codes = tuple(token.masked_code for token, _ in run.tokens)
        for recipient in notification_recipients():
            if not dry_run:
                try:
                    _digest(run.tokens, recipient).send()
                except Exception as error:  # noqa: BLE001 (at most once: reported, not retried)
                    logger.warning("expiry digest to %s not sent: %s", recipient, error)
                    run.failed.append(f"{recipient}: digest ({type(error).__name__})")
                    continue
            run.mails.append(SentMail(recipient, codes, None))
    return run
