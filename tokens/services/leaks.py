"""Tokens a secret scanner found public (GitHub's secret scanning partner program).

``report_leaked`` acts on one verified report: each reported string that is one of our
tokens is labelled ``true_positive`` (whatever its status: it is ours), marked leaked
(``leaked_at``, ``leak_url``: the first report's URL is kept) and, while Active, revoked
at once through the incident channel (any origin, OAuth-issued too). Anything else is a
``false_positive``. The whole report is one transaction, recorded as a ``LeakReport`` by
the digest of its body: a replay (GitHub retries a delivery it thinks failed) changes
nothing twice and answers the same labels.
"""

import unicodedata
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.logs import mask_secrets
from tokens import crypto
from tokens.gateway import cache
from tokens.models import AccessToken, AuditAction, LeakReport, TokenStatus
from tokens.services.lifecycle import (
    RevokeChannel,
    TokenNotRevocable,
    _record_change,
    token_revoke,
)

TRUE_POSITIVE = "true_positive"
FALSE_POSITIVE = "false_positive"
SECRET_SCANNING = "secret scanning"  # the actor of what a report does
LEAK_URL_MAX_LENGTH = 2000
_KEY_IDENTIFIER_MAX_LENGTH = LeakReport._meta.get_field("key_identifier").max_length


@dataclass(frozen=True)
class ReportedSecret:
    """One entry of a report: the string found, its type and where it was found."""

    token: str
    type: str
    url: str = ""
    source: str = ""

    @property
    def token_hash(self) -> str:
        """SHA-256 (hex) of the string exactly as reported: how the answer names it."""
        return crypto.digest(self.token)


@dataclass(frozen=True)
class LeakReportOutcome:
    labels: list[dict]  # one per entry, in order: token_hash, token_type, label
    replayed: bool  # the same report was handled before; nothing was done this time
    revoked: int  # tokens this report revoked

    @property
    def true_positives(self) -> int:
        return sum(label["label"] == TRUE_POSITIVE for label in self.labels)


def is_web_url(url: str | None) -> bool:
    """Whether ``url`` may be shown as a link: http or https with a host, nothing else
    (a ``javascript:`` or ``data:`` URL stays text)."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def clean_leak_url(url: str) -> str:
    """``url`` as stored and shown: no control characters or lone surrogates (neither
    PostgreSQL nor a page takes them), no secret in it, at most ``LEAK_URL_MAX_LENGTH``."""
    url = url.encode("utf-8", "replace").decode("utf-8")
    url = "".join(char for char in url if unicodedata.category(char) != "Cc").strip()
    return mask_secrets(url[:LEAK_URL_MAX_LENGTH])


def _ours(entries: list[ReportedSecret]) -> dict[str, int]:
    """{digest: token id} of the reported strings that are our tokens (one query)."""
    digests = {entry.token_hash for entry in entries if crypto.looks_like_token(entry.token)}
    if not digests:
        return {}
    return dict(AccessToken.objects.filter(digest__in=digests).values_list("digest", "pk"))


def leak_labels(entries: list[ReportedSecret], ours: dict[str, int] | None = None) -> list[dict]:
    """The answer to a report: one entry per reported string, in the report's order."""
    if ours is None:
        ours = _ours(entries)
    return [
        {
            "token_hash": entry.token_hash,
            "token_type": entry.type,
            "label": TRUE_POSITIVE if entry.token_hash in ours else FALSE_POSITIVE,
        }
        for entry in entries
    ]


@transaction.atomic
def report_leaked(
    entries: list[ReportedSecret],
    *,
    key_identifier: str,
    body_digest: str,
    source_label: str = SECRET_SCANNING,
) -> LeakReportOutcome:
    """Act on one verified report (see the module's docstring); one transaction.

    Of two identical reports at once, the unique ``body_digest`` makes one act; the
    other waits for it, then answers as a replay. A replay purges the gateways' cache of
    the reported tokens again: a delivery retried after a purge failed must still reach
    the cache (as a revoke of a revoked token does).
    """
    ours = _ours(entries)
    labels = leak_labels(entries, ours)
    try:
        with transaction.atomic():
            report = LeakReport.objects.create(
                body_digest=body_digest,
                key_identifier=key_identifier[:_KEY_IDENTIFIER_MAX_LENGTH],
                entries=len(entries),
                true_positives=sum(label["label"] == TRUE_POSITIVE for label in labels),
            )
    except IntegrityError:
        if not LeakReport.objects.filter(body_digest=body_digest).exists():
            raise
        for digest in sorted(ours):
            cache.purge_token_after_commit(digest)
        return LeakReportOutcome(labels=labels, replayed=True, revoked=0)

    # The first URL reported for each token; tokens in id order, so that two reports
    # naming the same tokens lock them in the same order.
    urls: dict[int, str] = {}
    for entry in entries:
        if entry.token_hash in ours:
            urls.setdefault(ours[entry.token_hash], clean_leak_url(entry.url))
    revoked = 0
    for token in AccessToken.objects.filter(pk__in=urls).order_by("pk"):
        url = urls[token.pk]
        _mark_leaked(token, url=url, actor=source_label, report=report)
        if token.status == TokenStatus.ACTIVE:
            # Expired meanwhile (TokenNotRevocable): the gateway refuses it already.
            with suppress(TokenNotRevocable):
                revoked += token_revoke(
                    token=token,
                    actor=source_label,
                    reason=f"leaked: {url}" if url else "leaked",
                    channel=RevokeChannel.INCIDENT,
                )
    return LeakReportOutcome(labels=labels, replayed=False, revoked=revoked)


def _mark_leaked(token: AccessToken, *, url: str, actor: str, report: LeakReport) -> bool:
    """Mark ``token`` leaked at ``url`` unless an earlier report did (its URL is kept)."""
    now = timezone.now()
    changed = AccessToken.objects.filter(pk=token.pk, leaked_at__isnull=True).update(
        leaked_at=now, leak_url=url, version=F("version") + 1
    )
    token.refresh_from_db(fields=["leaked_at", "leak_url", "version"])
    if not changed:
        return False
    _record_change(
        token=token,
        action=AuditAction.LEAK_REPORTED,
        actor=actor,
        changes={"leak_url": [None, url]},
        remote_addr=None,
        event="authn_token_leaked",
        leak_url=url,
        token_hash_prefix=token.digest[:12],  # the digest is the answer's token_hash
        report=report.pk,
    )
    return True
