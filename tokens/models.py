"""The domain: APIs, their plans, client apps, access tokens and their audit trail."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from tokens import crypto, search

base_path_validator = RegexValidator(
    r"^/[A-Za-z0-9._~\-/]*$",
    "A base path starts with “/” and holds only letters, digits and . _ ~ - /.",
)


class Api(models.Model):
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=20, default="v1")
    base_path = models.CharField(max_length=200, unique=True, validators=[base_path_validator])
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "version"]
        verbose_name = "API"
        verbose_name_plural = "APIs"

    def __str__(self):
        return f"{self.name} {self.version}"


class Plan(models.Model):
    api = models.ForeignKey(Api, on_delete=models.PROTECT, related_name="plans")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty means unlimited."
    )

    class Meta:
        ordering = ["api__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["api", "name"], name="plan_name_unique_per_api"),
            # Target of the composite foreign keys that tie a (plan, api) pair together.
            models.UniqueConstraint(fields=["id", "api"], name="plan_id_api_unique"),
        ]

    def __str__(self):
        return f"{self.api.name} – {self.name}"


class App(models.Model):
    name = models.CharField(max_length=100, unique=True)
    client_id = models.CharField(
        max_length=40, unique=True, default=crypto.generate_client_id, editable=False
    )
    client_secret_digest = models.CharField(max_length=64, editable=False)
    can_introspect = models.BooleanField(
        default=False, help_text="May call the token introspection endpoint (gateways)."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    subscriptions = models.ManyToManyField(Api, through="Subscription", related_name="apps")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        """A rename also renames the app's tokens' copy (``AccessToken.app_name``), in the
        same transaction; any other save leaves the tokens alone."""
        update_fields = kwargs.get("update_fields")
        if self.pk is None or (update_fields is not None and "name" not in update_fields):
            super().save(*args, **kwargs)
            return
        using = kwargs.get("using") or router.db_for_write(App, instance=self)
        with transaction.atomic(using=using, savepoint=False):
            # FOR UPDATE: tokens being written meanwhile read the name under a key-share
            # lock (search.stored_app_names), so none keeps the old name past this one.
            stored = (
                App.objects.using(using)
                .select_for_update()
                .filter(pk=self.pk)
                .values_list("name", flat=True)
                .first()
            )
            super().save(*args, **kwargs)
            if stored is not None and stored != self.name:
                AccessToken.objects.using(using).filter(app_id=self.pk).update(app_name=self.name)

    def default_plans(self, base_paths=None) -> list["Plan"]:
        """The plans a new token of this app gets unless told otherwise: those of its
        subscriptions (only of the APIs at ``base_paths``, when given)."""
        subscriptions = self.subscription_set.select_related("plan__api")
        if base_paths is not None:
            subscriptions = subscriptions.filter(api__base_path__in=list(base_paths))
        return [subscription.plan for subscription in subscriptions]

    def set_client_secret(self, secret: str) -> None:
        self.client_secret_digest = crypto.digest(secret)

    def check_client_secret(self, secret: str) -> bool:
        return bool(self.client_secret_digest) and crypto.digests_match(
            secret, self.client_secret_digest
        )


class Subscription(models.Model):
    """An app's subscription to an API under one of its plans: the default for its tokens."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="subscription_set")
    api = models.ForeignKey(Api, on_delete=models.PROTECT)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT)

    class Meta:
        ordering = ["api__name"]
        constraints = [
            models.UniqueConstraint(fields=["app", "api"], name="subscription_one_plan_per_api"),
        ]

    def __str__(self):
        return f"{self.app} → {self.plan}"


class TokenStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class TokenOrigin(models.TextChoices):
    PORTAL = "portal", "Portal"
    OAUTH = "oauth", "OAuth"


# "Expiring soon": an Active token whose expiry is at most this many days away. The list's
# quick filter, the badge beside Active (list, Overview) and the notices' candidates read
# it through AccessTokenQuerySet.expiring_soon / expiring_within and AccessToken.expires_soon.
EXPIRING_SOON_DAYS = 7


class AccessTokenQuerySet(models.QuerySet):
    def active(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def expired(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__lte=now)

    def revoked(self):
        return self.filter(revoked_at__isnull=False)

    def expiring_within(self, days, now=None):
        """Active tokens that expire within ``days`` days of ``now``: one range of
        token_expires_status_idx (expires_at, id, revoked_at), the revoked ones left out
        while reading it."""
        now = now or timezone.now()
        return self.filter(
            revoked_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=now + timedelta(days=days),
        )

    def expiring_soon(self, now=None):
        """Active tokens that expire within ``EXPIRING_SOON_DAYS``."""
        return self.expiring_within(EXPIRING_SOON_DAYS, now=now)

    def with_status(self, status: str, now=None):
        return {
            TokenStatus.ACTIVE: self.active,
            TokenStatus.EXPIRED: self.expired,
            TokenStatus.REVOKED: lambda now=None: self.revoked(),
        }[status](now=now)

    def by_secret(self, secret: str):
        """Tokens whose secret is ``secret`` (none for a malformed one: no query needed)."""
        if not crypto.looks_like_token(secret):
            return self.none()
        return self.filter(digest=crypto.digest(secret))

    def search(self, query: str):
        """Quick search: a pasted full token, a code prefix, or owner/app/extra-field text.

        Owner and extra fields match anywhere, case-insensitively (``icontains``); the app
        by its name, looked up first in its own small table, so that the whole condition
        is on the token table, where its indexes can serve it: pg_trgm on PostgreSQL, the
        FTS5 trigram index of migration 0006 on SQLite (tokens.search).
        """
        query = query.strip()
        if not query:
            return self
        if crypto.looks_like_token(query):
            return self.by_secret(query)
        if query.startswith(crypto.TOKEN_PREFIX):
            return search.code_prefix_search(self, query[: crypto.DISPLAY_PREFIX_LENGTH])
        app_ids = list(App.objects.filter(name__icontains=query).values_list("pk", flat=True))
        return search.text_search(self, query, app_ids=app_ids)

    def with_api(self, apis):
        """Tokens that may call any of ``apis`` (APIs or ids). EXISTS, not a join: a token
        linked to two is listed once, and the list's sort index finds a page of them at
        once, where SQLite would read every link of the API through a join, then sort."""
        return self.filter(Exists(TokenApi.objects.filter(token=OuterRef("pk"), api__in=apis)))

    def with_plan(self, plans):
        """Tokens that call an API under any of ``plans`` (plans or their ids)."""
        return self.filter(Exists(TokenApi.objects.filter(token=OuterRef("pk"), plan__in=plans)))

    def bulk_create(self, objs, *args, **kwargs):
        """Django's, with each token's ``app_name`` set as ``AccessToken.save`` sets it."""
        objs = list(objs)
        using = self._db or router.db_for_write(self.model)
        with transaction.atomic(using=using, savepoint=False):
            names = search.stored_app_names(App, (token.app_id for token in objs), using)
            for token in objs:
                token.app_name = names.get(token.app_id)
            return super().bulk_create(objs, *args, **kwargs)

    def with_list_columns(self):
        return self.select_related("app").prefetch_related(
            models.Prefetch("api_links", queryset=TokenApi.objects.select_related("api", "plan"))
        )


class AccessToken(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=crypto.DISPLAY_PREFIX_LENGTH, db_index=True)
    suffix = models.CharField(max_length=crypto.DISPLAY_SUFFIX_LENGTH)
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="tokens")
    # A copy of the app's name, for "sort by app": ordered by the joined app's name, a
    # page of a million tokens meant sorting all of an app's 166,000 on PostgreSQL; the
    # index (app_name, id) reads it in order. Set when the token is written (save,
    # bulk_create) and by App.save on a rename; a token's app never changes. Nullable so
    # that adding it (0008) is an ALTER TABLE on SQLite, not a rebuild of the table.
    app_name = models.CharField(max_length=100, null=True, editable=False)
    owner = models.CharField(max_length=200)
    extra_fields = models.JSONField(default=list, blank=True)
    origin = models.CharField(
        max_length=10, choices=TokenOrigin.choices, default=TokenOrigin.PORTAL
    )
    grant_type = models.CharField(max_length=40, blank=True)
    # Indexed with the id, in Meta.indexes (one index per sort serves its filters too).
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # Indexed for the revoked tokens only, in Meta.indexes: an index of every NULL would
    # tempt SQLite's planner to read the unrevoked 93 % of a big table through it.
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=200, blank=True)
    revocation_reason = models.TextField(blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # A secret scanner reported the secret public, and where (tokens.services.leaks).
    # Nullable, as app_name: adding them (0010) is an ALTER TABLE on SQLite, no rebuild.
    leaked_at = models.DateTimeField(null=True, blank=True, editable=False)
    leak_url = models.TextField(null=True, blank=True, editable=False)  # noqa: DJ001
    # Optimistic concurrency: every change increments it; an edit names the version it saw.
    version = models.PositiveIntegerField(default=1)
    apis = models.ManyToManyField(Api, through="TokenApi", related_name="tokens")

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("revoke_accesstoken", "Can revoke access token")]
        # Every sort the list offers, with the id that breaks its ties (StableOrderingFilter),
        # so that a page of a million rows is read from an index, never sorted whole.
        indexes = [
            models.Index(fields=["owner", "id"], name="token_owner_id_idx"),
            models.Index(fields=["app_name", "id"], name="token_app_name_id_idx"),
            models.Index(fields=["app", "-created_at"], name="token_app_created_idx"),
            # With the status columns: the status filters are checked in the index while
            # it is read in order, and "expired" is counted in the expiry index alone.
            models.Index(
                fields=["created_at", "id", "revoked_at", "expires_at"],
                name="token_created_status_idx",
            ),
            models.Index(
                fields=["expires_at", "id", "revoked_at"], name="token_expires_status_idx"
            ),
            models.Index(fields=["last_used_at", "id"], name="token_last_used_id_idx"),
            models.Index(fields=["prefix", "id"], name="token_prefix_id_idx"),
            # The origin filter (portal or OAuth), newest first.
            models.Index(fields=["origin", "-created_at", "-id"], name="token_origin_created_idx"),
            # Status "revoked", newest first, and its count.
            models.Index(
                fields=["created_at", "id"],
                condition=Q(revoked_at__isnull=False),
                name="token_revoked_created_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | ~Q(revoked_by=""),
                name="token_revoked_has_actor",
            ),
            models.CheckConstraint(
                condition=Q(origin__in=[c.value for c in TokenOrigin]),
                name="token_origin_valid",
            ),
        ]

    def __str__(self):
        return self.masked_code

    def save(self, *args, **kwargs):
        """A new token takes its app's name as stored (``search.stored_app_names``)."""
        if not self._state.adding:
            super().save(*args, **kwargs)
            return
        using = kwargs.get("using") or router.db_for_write(AccessToken, instance=self)
        with transaction.atomic(using=using, savepoint=False):
            self.app_name = search.stored_app_names(App, [self.app_id], using).get(self.app_id)
            super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("tokens:detail", kwargs={"public_id": self.public_id})

    @property
    def masked_code(self) -> str:
        return f"{self.prefix}…{self.suffix}"

    def status_at(self, now) -> TokenStatus:
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    @property
    def status(self) -> TokenStatus:
        return self.status_at(timezone.now())

    @property
    def is_active(self) -> bool:
        return self.status == TokenStatus.ACTIVE

    def expires_soon_at(self, now) -> bool:
        """Whether the token is Active at ``now`` and expires within ``EXPIRING_SOON_DAYS``
        (as ``AccessTokenQuerySet.expiring_soon`` selects)."""
        return (
            self.revoked_at is None
            and self.expires_at is not None
            and now < self.expires_at <= now + timedelta(days=EXPIRING_SOON_DAYS)
        )

    @property
    def expires_soon(self) -> bool:
        return self.expires_soon_at(timezone.now())

    def can_be_edited(self) -> bool:
        return self.is_active

    def portal_revoke_refusal(self, now=None) -> str | None:
        """Why the portal (its REVOKE, Django admin) must not revoke this token, or None.

        ``TokenStatus.EXPIRED``: the gateway already refuses it. ``TokenOrigin.OAUTH``: an
        OAuth-issued token is revoked by its client through RFC 7009, never here. A
        revoked token is not refused: revoking it again changes nothing but purges the
        gateways' cache again (how a failed purge is retried).
        """
        return self.revoke_refusal(portal=True, now=now)

    def revoke_refusal(self, *, portal: bool, now=None) -> str | None:
        """Why a revoke of this token is refused, or None: the one rule of every revoke
        (REVOKE, Django admin, a batch of a job, an app's incident revoke).

        ``TokenStatus.EXPIRED`` first, whoever revokes: the gateway already refuses it, so
        nothing needs doing whatever its origin. Then, for the portal (``portal``), an
        OAuth-issued token: ``TokenOrigin.OAUTH``. A revoked token is not refused.
        """
        if self.revoked_at is not None:
            return None  # revoking it again changes nothing but purges the caches again
        if self.status_at(now or timezone.now()) == TokenStatus.EXPIRED:
            return TokenStatus.EXPIRED
        if portal and self.origin != TokenOrigin.PORTAL:
            return TokenOrigin.OAUTH
        return None

    def can_be_revoked_in_portal(self) -> bool:
        return self.revoked_at is None and self.portal_revoke_refusal() is None

    def extra_field_pairs(self) -> list[tuple[str, str]]:
        return [(str(name), str(value)) for name, value in self.extra_fields or []]


class TokenApi(models.Model):
    """Which APIs a token may call, and under which plan of each."""

    token = models.ForeignKey(AccessToken, on_delete=models.CASCADE, related_name="api_links")
    api = models.ForeignKey(Api, on_delete=models.PROTECT)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT)

    class Meta:
        ordering = ["api__name", "api__version"]
        constraints = [
            models.UniqueConstraint(fields=["token", "api"], name="token_one_plan_per_api"),
        ]

    def __str__(self):
        return f"{self.api} under {self.plan.name}"


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    EDITED = "edited", "Edited"
    REVOKED = "revoked", "Revoked"
    ROTATED = "rotated", "Rotated"
    LEAK_REPORTED = "leak_reported", "Reported leaked"


class AuditEvent(models.Model):
    token = models.ForeignKey(AccessToken, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Who acted, as text that survives the user's deletion ("alice", "client tpc_…").
    actor_label = models.CharField(max_length=200)
    # {field: [before, after]}; never a secret.
    changes = models.JSONField(default=dict, blank=True)
    token_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    # The background job this change was part of (a bulk revoke), if any.
    job = models.ForeignKey(
        "Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["token", "-created_at"], name="audit_token_time_idx")]

    def __str__(self):
        return f"{self.get_action_display()} by {self.actor_label}"


class JobKind(models.TextChoices):
    BULK_REVOKE = "bulk_revoke", "Revoke selected tokens"
    APP_REVOKE = "app_revoke", "Revoke all tokens of an app"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Finished"
    FAILED = "failed", "Failed"


class Job(models.Model):
    """A background job an administrator started, with its progress and result; also the
    job's own audit record (who, what, which tokens, the counts). Run by django-tasks
    (``tokens.jobs``); ``cursor`` is the last token id handled, so an interrupted job
    resumes after it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=JobKind.choices)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    # What it acts on, in words ("App is Acme; Status is Active") and as the list's query
    # string (bulk revoke) or the app (app revoke).
    description = models.TextField()
    query = models.TextField(blank=True)
    app = models.ForeignKey(App, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    # Only tokens created at or before it: the selection the administrator confirmed.
    cutoff = models.DateTimeField()
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    revoked = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True)  # {why: count}
    cursor = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.description}"

    def get_absolute_url(self):
        return reverse("tokens:job", kwargs={"public_id": self.public_id})

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values()) if self.skipped else 0

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        return min(100, int(100 * self.processed / self.total)) if self.total else 0

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)


class TokenRotation(models.Model):
    """ROTATE: ``old`` was replaced by ``new``; ``old`` keeps working until ``old_stops_at``.

    Its own table, each side one-to-one: two rotations of one token at once make one new
    token (the second insert fails), and adding it left the token table alone."""

    old = models.OneToOneField(
        AccessToken, on_delete=models.PROTECT, related_name="rotation_to_new", editable=False
    )
    new = models.OneToOneField(
        AccessToken, on_delete=models.PROTECT, related_name="rotation_from_old", editable=False
    )
    old_stops_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    actor_label = models.CharField(max_length=200)

    def __str__(self):
        return f"{self.old} → {self.new}"


class LeakReport(models.Model):
    """A secret scanner's report (GitHub's secret scanning partner program), kept by the
    digest of its body: a replay is recognised and changes nothing twice."""

    body_digest = models.CharField(max_length=64, unique=True)
    key_identifier = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=timezone.now)
    entries = models.PositiveIntegerField()
    true_positives = models.PositiveIntegerField()

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.entries} reported, {self.true_positives} ours"


class ExpiryNotice(models.Model):
    """One e-mail about one token reaching one threshold (``notify_expiring``): never twice."""

    token = models.ForeignKey(AccessToken, on_delete=models.CASCADE, related_name="expiry_notices")
    threshold_days = models.PositiveSmallIntegerField()
    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["token", "threshold_days"], name="expiry_notice_once_per_threshold"
            )
        ]

    def __str__(self):
        return f"{self.token} within {self.threshold_days} days"


class NotificationSettings(models.Model):
    """A portal administrator's choice of e-mails (today: tokens about to expire)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="notification_settings",
    )
    expiring_tokens = models.BooleanField(
        default=False, help_text="E-mail me when tokens are about to expire."
    )

    def __str__(self):
        return f"Notifications of {self.user}"
