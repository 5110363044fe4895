"""The domain: APIs, their plans, client apps, access tokens and their audit trail."""

import contextlib
import json
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import connections, models, router, transaction
from django.db.models import Func, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat
from django.urls import reverse
from django.utils import timezone

from tokens import crypto

base_path_validator = RegexValidator(
    r"^/[A-Za-z0-9._~\-/]*$",
    "A base path starts with “/” and holds only letters, digits and . _ ~ - /.",
)


# SQLite: the FTS5 trigram index of the tokens' owner and extra-field text (migration
# 0006, kept in step by triggers). It stores which rows hold each 3-character sequence.
SEARCH_TABLE = "tokens_accesstoken_search"
# Up to this many candidates, a text search reads them through the index (as many as the
# list counts exactly: tokens.pagination); beyond it, the text is common (see search()).
SEARCH_CANDIDATES_LIMIT = 10_000
# PostgreSQL: a text longer than twice this is looked up by its start and end (search()).
SEARCH_PATTERN_ENDS = 5
# Trigrams looked up per searched text: each costs a read of every row holding it, and
# a few already narrow a text down to its rows.
SEARCH_TRIGRAMS = 3
_search_index_present: dict[tuple[str, str], bool] = {}


def _has_search_index(alias: str) -> bool:
    """Whether the SQLite database has the FTS5 search table (its SQLite may lack FTS5)."""
    connection = connections[alias]
    key = (alias, str(connection.settings_dict["NAME"]))
    if key not in _search_index_present:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [SEARCH_TABLE])
            _search_index_present[key] = cursor.fetchone() is not None
    return _search_index_present[key]


@contextlib.contextmanager
def search_index_paused(connection, *, enabled: bool = True):
    """For a bulk load of tokens on SQLite: the search index's triggers are dropped for
    the load, then created again and the index rebuilt from the table in one pass,
    several times faster than a trigger per inserted row. Use it inside the load's
    transaction. Elsewhere (or when not ``enabled``) it does nothing."""
    if not enabled or connection.vendor != "sqlite" or not _has_search_index(connection.alias):
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
            [f"{SEARCH_TABLE}_%"],
        )
        triggers = cursor.fetchall()
        for name, _ in triggers:
            cursor.execute(f'DROP TRIGGER "{name}"')
    yield
    with connection.cursor() as cursor:
        for _, sql in triggers:
            cursor.execute(sql)
        cursor.execute(f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}) VALUES ('rebuild')")  # noqa: S608


def _stored_app_names(app_ids, using: str) -> dict[int, str]:
    """{app id: name} as stored, for the tokens being written (``AccessToken.app_name``).

    On PostgreSQL the apps are read under a key-share lock, held until the transaction
    ends; a rename (``App.save``) locks its app for update first. So a token written while
    its app is renamed either waits for the rename and gets the new name, or is already
    there when the rename updates its app's tokens. (An ``App`` at hand may be older than
    the table: the OAuth endpoints take their client from a cache.) Tokens of one app
    being written at once do not wait for each other: key-share locks do not conflict.
    """
    ids = sorted({app_id for app_id in app_ids if app_id is not None})
    if not ids:
        return {}
    connection = connections[using]
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, name FROM {App._meta.db_table} WHERE id IN ({placeholders}){lock}",  # noqa: S608
            ids,
        )
        return dict(cursor.fetchall())


def _ends_pattern(text: str) -> str:
    """A LIKE pattern of the start and the end of ``text``, in that order."""

    def escaped(part: str) -> str:
        return part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

    start, end = text[:SEARCH_PATTERN_ENDS], text[-SEARCH_PATTERN_ENDS:]
    return f"%{escaped(start)}%{escaped(end)}%"


def _upper_like(column: str, pattern: str) -> Q:
    """``UPPER(column::text) LIKE UPPER(pattern)``: the expression of the trigram indexes."""
    like = Func(
        Cast(column, models.TextField()),
        Value(pattern),
        template="UPPER(%(expressions)s)",
        arg_joiner=") LIKE UPPER(",
        output_field=models.BooleanField(),
    )
    return Q(like)


def _rarity(trigram: str) -> int:
    return sum(char.isdigit() for char in trigram)


def _fts_match(texts: list[str]) -> str | None:
    """An FTS5 query for rows holding any of ``texts`` (each as a few of its trigrams,
    all of them), or None where the index cannot help (a text under 3 characters)."""
    alternatives = []
    for text in dict.fromkeys(texts):
        if len(text) < 3 or "\x00" in text:
            return None
        # Non-overlapping trigrams say more about the text than neighbours do; of those,
        # the ones with digits are usually held by fewer rows than words are ("424"
        # rather than "xam" of every "example"), then the first ones.
        starts = list(range(0, len(text) - 2, 3))
        if starts[-1] != len(text) - 3:
            starts.append(len(text) - 3)
        chosen = sorted(starts, key=lambda i: -_rarity(text[i : i + 3]))[:SEARCH_TRIGRAMS]
        trigrams = dict.fromkeys(text[i : i + 3].lower() for i in sorted(chosen))
        phrases = " AND ".join('"{}"'.format(t.replace('"', '""')) for t in trigrams)
        alternatives.append(f"({phrases})")
    return " OR ".join(alternatives)


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
            # lock (_stored_app_names), so none keeps the old name past this transaction.
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
        FTS5 trigram index of migration 0006 on SQLite (``_sqlite_text_search``).
        """
        query = query.strip()
        if not query:
            return self
        if crypto.looks_like_token(query):
            return self.by_secret(query)
        if query.startswith(crypto.TOKEN_PREFIX):
            return self.with_code_prefix(query[: crypto.DISPLAY_PREFIX_LENGTH])
        # Extra fields are matched in their stored JSON text, where quotes and backslashes
        # are escaped and, on SQLite, non-ASCII letters are \uXXXX: look for those forms too.
        texts = list(
            dict.fromkeys(
                [query, json.dumps(query)[1:-1], json.dumps(query, ensure_ascii=False)[1:-1]]
            )
        )
        vendor = connections[self.db].vendor
        in_text = Q(owner__icontains=query)
        for text in texts:
            in_extra = Q(extra_fields__icontains=text)
            if vendor == "postgresql" and text not in ("[", "]", "[]"):
                # Most tokens have no extra fields: comparing with '[]' is cheap, turning
                # each jsonb into text to match it is not (half of a common word's count).
                in_extra = ~Q(extra_fields=[]) & in_extra  # checked first
            in_text |= in_extra
        app_ids = list(App.objects.filter(name__icontains=query).values_list("pk", flat=True))
        if app_ids:
            # Tokens of a matching app are many: the list's sort index finds a page of
            # them at once, with no text index needed.
            return self.filter(in_text | Q(app_id__in=app_ids))
        if vendor == "sqlite":
            return self._sqlite_text_search(query, texts, in_text)
        if vendor == "postgresql":
            return self._postgresql_text_search(query, texts, in_text)
        return self.filter(in_text)

    def with_code_prefix(self, prefix: str):
        """Tokens whose code starts with ``prefix``, case-sensitively, as codes are."""
        if connections[self.db].vendor != "sqlite" or not prefix:
            return self.filter(prefix__startswith=prefix)
        # SQLite's LIKE (what startswith becomes) is case-insensitive and, with Django's
        # ESCAPE clause, never uses an index: a range of the binary-collated index is.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if ord(prefix[-1]) < 0x10FFFF else None
        if upper is None:
            return self.filter(prefix__startswith=prefix)
        return self.filter(prefix__gte=prefix, prefix__lt=upper)

    def _sqlite_text_search(self, query: str, texts: list[str], in_text: Q):
        """The owner/extra-field search on SQLite, through the FTS5 trigram index.

        The index finds candidates (rows holding all of a few trigrams of the text); the
        ``icontains`` condition is then checked on them as before, so the rows found are
        exactly those of a plain scan. A text found in few rows (at most
        ``SEARCH_CANDIDATES_LIMIT``) is read through the index; a common one is not: the
        list's sort index meets matching rows at once, while SQLite would fetch and sort
        every candidate.
        """
        match = _fts_match([query, *texts])
        if match is None or not _has_search_index(self.db):
            return self.filter(in_text)
        index_query = f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH %s"  # noqa: S608
        with connections[self.db].cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM ({index_query} LIMIT %s)",  # noqa: S608
                [match, SEARCH_CANDIDATES_LIMIT + 1],
            )
            (candidates,) = cursor.fetchone()
        if candidates > SEARCH_CANDIDATES_LIMIT:
            return self.filter(in_text)
        # The table name is a constant; the text is a parameter.
        return self.filter(in_text, pk__in=RawSQL(index_query, [match]))  # noqa: S611

    def _postgresql_text_search(self, query: str, texts: list[str], in_text: Q):
        """The owner/extra-field search on PostgreSQL, through the pg_trgm indexes (0004).

        For a LIKE pattern, pg_trgm reads the rows of every trigram of its text, and a
        long text holds common ones ("example", "@acme") that cost tens of milliseconds.
        So a long text asks the index for its start and end only (``%START%END%``: any row
        holding the text holds them, in that order), then ``icontains`` checks those
        candidates, over an expression the planner cannot read from the index too.
        """
        if len(query) <= 2 * SEARCH_PATTERN_ENDS:
            return self.filter(in_text)
        candidates = _upper_like("owner", _ends_pattern(query))
        check = Q(owner_text__icontains=query)
        for text in texts:
            candidates |= _upper_like("extra_fields", _ends_pattern(text))
            check |= Q(extra_text__icontains=text)
        return self.alias(
            owner_text=Concat(
                Cast("owner", models.TextField()), Value(""), output_field=models.TextField()
            ),
            extra_text=Concat(
                Cast("extra_fields", models.TextField()),
                Value(""),
                output_field=models.TextField(),
            ),
        ).filter(candidates, check)

    def bulk_create(self, objs, *args, **kwargs):
        """Django's, with each token's ``app_name`` set as ``AccessToken.save`` sets it."""
        objs = list(objs)
        using = self._db or router.db_for_write(self.model)
        with transaction.atomic(using=using, savepoint=False):
            names = _stored_app_names((token.app_id for token in objs), using)
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
        """A new token takes its app's name as stored (``_stored_app_names``)."""
        if not self._state.adding:
            super().save(*args, **kwargs)
            return
        using = kwargs.get("using") or router.db_for_write(AccessToken, instance=self)
        with transaction.atomic(using=using, savepoint=False):
            self.app_name = _stored_app_names([self.app_id], using).get(self.app_id)
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

    def can_be_edited(self) -> bool:
        return self.is_active

    def can_be_revoked_in_portal(self) -> bool:
        """OAuth-issued tokens are revoked by their client through RFC 7009, never here."""
        return self.is_active and self.origin == TokenOrigin.PORTAL

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

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["token", "-created_at"], name="audit_token_time_idx")]

    def __str__(self):
        return f"{self.get_action_display()} by {self.actor_label}"
