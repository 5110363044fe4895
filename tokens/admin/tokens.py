"""Django admin for support staff: find a token (also by its full value), read its history,
revoke it; and for superusers, manage APIs, plans and apps.

Rules live in the models and services: the admin revokes through ``services.token_revoke``
(audit event, cache purge), never edits a token directly, and never shows a secret or a
digest (nor keeps one in ``django_admin_log``: a pasted reason is masked). A purge of the
gateways' cache that fails after a change committed is reported on the page, never as a
500, and running the same revoke or save again purges again. The changelists are built
for a million tokens: no exact ``COUNT(*)`` once the table is big
(``EstimatedCountPaginator``), no query per row, filters that cost at most one small
query each, and no date hierarchy (its year list scans the whole table).
"""

from collections import defaultdict

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import NotRelationField, get_fields_from_path, unquote
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.contrib.auth import get_permission_codename
from django.core.exceptions import (
    FieldDoesNotExist,
    PermissionDenied,
    SuspiciousOperation,
    ValidationError,
)
from django.db import router, transaction
from django.db.models import Exists, IntegerField, OuterRef
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext

from portal.logs import mask_secrets
from tokens import crypto, services
from tokens.gateway.cache import CachePurgeFailed
from tokens.models import (
    AccessToken,
    Api,
    App,
    AuditEvent,
    Plan,
    Subscription,
    TokenApi,
    TokenStatus,
)
from tokens.pagination import SEARCH_EXACT_COUNT_LIMIT, EstimatedCountPaginator
from tokens.templatetags.portal import change_text, field_label

admin.site.site_header = "Token Portal administration"
admin.site.site_title = "Token Portal admin"

# A bulk revoke runs one transaction of a few queries per token; beyond this many, ask
# for a narrower selection rather than hold locks for minutes.
MAX_BULK_REVOKE = 1000

# Marks the POST of the search box (see ``SecretSafeSearchMixin``).
SEARCH_POST_MARKER = "_search"


def _remote_addr(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _when(value):
    """A time in the list as the portal's list writes it ("2026-11-28 10:05", local time).
    Admin's localized format ("Nov. 28, 2026, 10:05 a.m.") costs about 50 µs a cell
    through the translation machinery, and a page has 150 of them."""
    return None if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def _describe_changes(changes: dict):
    # Worded as the portal's History tab words them.
    rows = (
        (field_label(field), change_text(before), change_text(after))
        for field, (before, after) in (changes or {}).items()
    )
    return format_html_join("", '<div class="audit-change">{}: {} → {}</div>', rows) or "—"


class TokenAdminMedia:
    css = {"all": ["admin_extra/tokens.css"]}


class CheckedSelectionMixin:
    """A forged action selection (not row ids) gets a message, not a 500."""

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(_is_row_id(value) for value in selected):
            self.message_user(
                request, "The selection was not understood; select the rows again.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


def _is_row_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) < 2**63


def _row_id(value) -> int | None:
    """``value`` as a row id; None unless it is ASCII digits within 64 bits ("²" and "٣"
    are digits to Python, and SQLite's driver overflows beyond 64 bits)."""
    return int(value) if isinstance(value, str) and _is_row_id(value) else None


class BadListQuery(SuspiciousOperation):
    """A list's query string holds a value that no database can compare: answered 400."""


def _integer_target(model, key: str) -> bool:
    """Whether the lookup ``key`` (``app``, ``app__id__in``…) compares an integer column."""
    parts = key.split(LOOKUP_SEP)
    if parts[-1] == "isnull":
        return False
    for end in range(len(parts), 0, -1):
        try:
            field = get_fields_from_path(model, LOOKUP_SEP.join(parts[:end]))[-1]
        except (FieldDoesNotExist, NotRelationField):
            continue
        field = getattr(field, "target_field", field) if field.is_relation else field
        return isinstance(field, IntegerField)
    return False


class CheckedChangeList(ChangeList):
    """A list filter's value that no database can compare is answered 400, not a 500
    (and not admin's "Database error" page): NUL anywhere, which PostgreSQL refuses in
    a text literal, and, for an integer column, a number beyond 64 bits, which SQLite's
    driver cannot even send. Every filter's and lookup's value passes here."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        for key, values in lookup_params.items():
            if "\x00" in key or any("\x00" in value for value in values):
                raise BadListQuery("NUL in a list filter")
        return lookup_params

    def get_filters(self, request):
        try:
            filters = super().get_filters(request)
        except OverflowError as error:  # the date hierarchy's day 2147483648 (admin's own)
            raise BadListQuery("A date beyond the calendar in the list filter") from error
        remaining = filters[2]  # the lookups no list filter took, applied as given
        for key, values in remaining.items():
            if not _integer_target(self.model, key):
                continue
            for value in values:
                # An __in lookup's value arrives split already (a list), else a string.
                for number in value if isinstance(value, list) else value.split(","):
                    try:
                        out_of_range = not -(2**63) <= int(number) < 2**63
                    except ValueError:
                        continue  # not a number: admin's own ?e=1
                    if out_of_range:
                        raise BadListQuery(f"An id beyond 64 bits in the list filter {key}")
        return filters


class CheckedListMixin:
    def get_changelist(self, request, **kwargs):
        return CheckedChangeList


class ReportsPurgeFailures:
    """Saving or deleting an API, plan or app purges what the gateways cache of it once
    the change commits; when the cache cannot be reached, ``CachePurgeFailed`` comes
    after the commit. The change stands: the page says so and how to retry (a save
    purges again), instead of a 500 that hides that the change was saved.

    Each view runs in a transaction of its own, so that the purges (made when it
    commits) fail here, with the view's answer in hand.
    """

    purge_retry_hint = "Save it again (or any API, plan or app) to purge again."

    def reporting_purge_failures(self, request, view, *args, **kwargs):
        if request.method != "POST":  # only a POST changes anything
            return view(request, *args, **kwargs)
        response = None
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                response = view(request, *args, **kwargs)
        except CachePurgeFailed as failure:
            if response is None:  # raised inside: nothing was committed
                raise
            self.message_user(request, f"{failure.message} {self.purge_retry_hint}", messages.ERROR)
        return response

    def changeform_view(self, request, *args, **kwargs):
        return self.reporting_purge_failures(request, super().changeform_view, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        return self.reporting_purge_failures(request, super().delete_view, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        # Actions (delete selected, regenerate secret) run here.
        return self.reporting_purge_failures(request, super().changelist_view, *args, **kwargs)


class ReadOnlyAdminMixin:
    """Nobody adds, changes or deletes these rows in admin; viewing needs the view permission."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SecretSafeSearchMixin:
    """The search box POSTs, so that a pasted full token never lands in a URL.

    A full token found by its digest opens that token's page; any other term is
    redirected to the usual ``?q=`` search (owner names may be in URLs, secrets may not).
    A hand-made ``?q=`` holding a full token is answered the same way, so no page ever
    echoes a secret (the search box, sort and filter links would all repeat ``q``).
    """

    search_by_post = True

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and SEARCH_POST_MARKER in request.POST:
            term = request.POST.get("q", "")
        elif request.method == "GET" and crypto.looks_like_token(request.GET.get("q", "").strip()):
            term = request.GET["q"]
        else:
            return super().changelist_view(request, extra_context)
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return self.search_redirect(request, term.strip())

    def search_redirect(self, request, term: str):
        params = request.GET.copy()
        for key in ("q", "p", "e"):
            params.pop(key, None)
        if crypto.looks_like_token(term):
            token = AccessToken.objects.by_secret(term).first()
            if token is not None:
                return HttpResponseRedirect(self.url_for_pasted_token(token))
            messages.warning(request, "No token matches the pasted token.")
        elif term.startswith(crypto.TOKEN_PREFIX) and len(term) > crypto.DISPLAY_PREFIX_LENGTH:
            # Nearly a token (a typo fails its checksum): what may be most of a secret
            # stays out of the URL; the code prefix is all the search uses anyway.
            messages.warning(
                request,
                "That is not a complete, valid token (a character may be wrong or missing); "
                "showing the tokens whose code starts the same way.",
            )
            params["q"] = term[: crypto.DISPLAY_PREFIX_LENGTH]
        elif term:
            params["q"] = term
        query = params.urlencode()
        return HttpResponseRedirect(request.path + (f"?{query}" if query else ""))

    def url_for_pasted_token(self, token: AccessToken) -> str:
        # The token's page, with its history: what support came for.
        return reverse("admin:tokens_accesstoken_change", args=[token.pk])


# --- Access tokens -------------------------------------------------------------------


class TokenChangeList(CheckedChangeList):
    """Ties of a sorted column are broken by the id in the column's direction (admin's
    own tiebreak is always ``-pk``), so that one index ``(column, id)`` serves both
    directions: no sort of the 400,000 tokens that never expire, or of tied owners."""

    def get_ordering(self, request, queryset):
        if self.params.get(ORDER_VAR):
            # Admin follows a chosen column with the queryset's ordering (the list's
            # default, -created_at, -id, which ModelAdmin.get_queryset applies): a second
            # key that no (column, id) index holds, so PostgreSQL would sort all of a
            # tie's rows (all of an app's 166,000 tokens). The id alone breaks ties.
            chosen = super().get_ordering(request, queryset.order_by())
            if chosen != ["-pk"]:  # else no valid column: the default order
                return chosen
        return super().get_ordering(request, queryset)

    def _get_deterministic_ordering(self, ordering):
        ordering = super()._get_deterministic_ordering(ordering)
        if len(ordering) > 1 and ordering[-1] == "-pk":
            first = ordering[0]
            descending = getattr(first, "descending", None)
            if descending is None:
                descending = str(first).startswith("-")
            if not descending:
                ordering[-1] = "pk"
        return ordering


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return TokenStatus.choices

    def queryset(self, request, queryset):
        if self.value() in TokenStatus.values:
            return queryset.with_status(self.value())
        return queryset


class ApiFilter(admin.SimpleListFilter):
    title = "API"
    parameter_name = "api"

    def lookups(self, request, model_admin):
        return [(api.pk, str(api)) for api in Api.objects.all()]

    def queryset(self, request, queryset):
        # EXISTS, not a join: the list's sort index finds a page of linked tokens at once,
        # where SQLite would read every link of the API through a join, then sort them.
        api_id = _row_id(self.value())
        if api_id is not None:
            links = TokenApi.objects.filter(token=OuterRef("pk"), api_id=api_id)
            return queryset.filter(Exists(links))
        return queryset  # not a row id ("²", beyond 64 bits): ignored


class PlanFilter(admin.SimpleListFilter):
    title = "plan"
    parameter_name = "plan"

    def lookups(self, request, model_admin):
        return [
            (plan.pk, f"{plan.api} – {plan.name}") for plan in Plan.objects.select_related("api")
        ]

    def queryset(self, request, queryset):
        plan_id = _row_id(self.value())
        if plan_id is not None:
            links = TokenApi.objects.filter(token=OuterRef("pk"), plan_id=plan_id)
            return queryset.filter(Exists(links))
        return queryset  # not a row id: ignored


class RevokeForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in each token's history, e.g. “leaked in a public repository, "
        "ticket #1234”.",
    )

    def __init__(self, *args, reason_required: bool = True, **kwargs):
        # Purging tokens that are already revoked again records nothing: no reason asked.
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required


def _sort_for_revoke(tokens, now=None):
    """The tokens to revoke; those already revoked (purged again, which retries a purge
    that failed); and the others, each with why it is left alone."""
    now = now or timezone.now()
    to_revoke, to_purge, skipped = [], [], []
    for each in tokens:
        why = services.portal_revoke_skip_reason(each, now=now)
        if why is None:
            to_revoke.append(each)
        elif each.revoked_at is not None:
            to_purge.append(each)
        else:
            skipped.append((each, why))
    return to_revoke, to_purge, skipped


def _tokens(count: int) -> str:
    return f"{count} token{'s' if count != 1 else ''}"


class AuditEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AuditEvent
    verbose_name = "history entry"
    verbose_name_plural = "History"
    fields = ("when", "action", "who", "changes_display", "remote_address")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description="When")
    def when(self, event):
        return formats.localize(timezone.localtime(event.created_at))

    @admin.display(description="Who")
    def who(self, event):
        return event.actor_label

    @admin.display(description="Changes")
    def changes_display(self, event):
        return _describe_changes(event.changes)

    @admin.display(description="Remote address")
    def remote_address(self, event):
        return event.remote_addr or "—"


@admin.register(AccessToken)
class AccessTokenAdmin(
    CheckedSelectionMixin, SecretSafeSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    """Tokens are created in the portal or by OAuth, edited in the portal, and revoked —
    never deleted. Here they can be found, read and revoked."""

    list_display = (
        "code",
        "owner",
        "app_display",
        "status_badge",
        "api_plans",
        "created",
        "expires",
        "last_used",
    )
    list_filter = (
        StatusFilter,
        "origin",
        "app",
        ApiFilter,
        PlanFilter,
        ("created_at", admin.DateFieldListFilter),
        ("expires_at", admin.DateFieldListFilter),
    )
    list_select_related = ("app",)
    list_per_page = 50
    ordering = ("-created_at", "-id")
    # The search itself is AccessToken.objects.search (see get_search_results); these
    # fields only make admin show the search box.
    search_fields = ("owner", "app__name", "prefix")
    search_help_text = (
        "Owner, app, extra-field value, the start of a code (tpk_…), or a full token "
        "pasted from a customer (matched by its digest; it is neither stored nor shown)."
    )
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["revoke_selected"]
    inlines = [AuditEventInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "code",
                    "status_badge",
                    "app",
                    "owner",
                    "extra_fields_display",
                    "origin",
                    "grant_type",
                    "public_id",
                )
            },
        ),
        ("APIs and plans", {"fields": ("api_plans",)}),
        (
            "Lifecycle",
            {
                "fields": (
                    "created_at",
                    "created_by",
                    "expires_at",
                    "last_used_at",
                    "revoked_at",
                    "revoked_by",
                    "revocation_reason",
                    "version",
                )
            },
        ),
    )
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]
    Media = TokenAdminMedia

    def get_queryset(self, request):
        return super().get_queryset(request).with_list_columns()

    def get_changelist(self, request, **kwargs):
        return TokenChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        searching = bool(request.GET.get("q", "").strip())
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            exact_count_limit=SEARCH_EXACT_COUNT_LIMIT if searching else None,
        )

    def action_checkbox(self, token):
        # Admin's own renders a CheckboxInput through the template engine, 50 times a
        # page; this writes the same element.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(token.pk),
            format_html(gettext("Select this object for an action - {}"), str(token)),
        )

    def get_search_results(self, request, queryset, search_term):
        # The domain's quick search: owner, app, extra-field value, code prefix, and a
        # full token matched by its digest. It never duplicates rows.
        return queryset.search(search_term), False

    def view_on_site(self, obj):
        return obj.get_absolute_url()

    def has_revoke_permission(self, request, obj=None):
        codename = get_permission_codename("revoke", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    # Columns and read-only fields.

    @admin.display(description="Code")
    def code(self, token):
        return token.masked_code

    @admin.display(description="Status")
    def status_badge(self, token):
        status = token.status
        return format_html(
            '<span class="token-status token-status--{}">{}</span>', status.value, status.label
        )

    # Sorted by the token's copy of its app's name, read in order from its index
    # (app_name, id; TokenChangeList breaks ties by the id in the same direction):
    # ordering by the joined app's name sorted a million rows. (Not named "app_name":
    # a model field of that name would take the column's place.)
    @admin.display(description="App", ordering="app_name")
    def app_display(self, token):
        return token.app.name

    @admin.display(description="APIs")
    def api_plans(self, token):
        # Prefetched by with_list_columns(): no query per row.
        return ", ".join(f"{link.api} ({link.plan.name})" for link in token.api_links.all()) or "—"

    @admin.display(description="Created", ordering="created_at")
    def created(self, token):
        return _when(token.created_at)

    @admin.display(description="Expires", ordering="expires_at", empty_value="never")
    def expires(self, token):
        return _when(token.expires_at)

    @admin.display(description="Last used", empty_value="never")
    def last_used(self, token):
        # Not offered as a sort here (the portal's list offers it).
        return _when(token.last_used_at)

    @admin.display(description="Extra fields")
    def extra_fields_display(self, token):
        pairs = token.extra_field_pairs()
        return format_html_join("", "<div>{}: {}</div>", pairs) if pairs else "—"

    # Revoking: the action, the change page's button, and their shared confirmation.

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="tokens_accesstoken_revoke",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["can_revoke"] = self.has_revoke_permission(request, obj)
            context["revoke_skip_reason"] = services.portal_revoke_skip_reason(obj)
            context["revoke_url"] = reverse("admin:tokens_accesstoken_revoke", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        tokens = list(queryset.select_related("app")[: MAX_BULK_REVOKE + 1])
        if len(tokens) > MAX_BULK_REVOKE:
            self.message_user(
                request,
                f"Select at most {MAX_BULK_REVOKE:,} tokens to revoke at once; "
                "narrow the list with a search or a filter.",
                messages.ERROR,
            )
            return None
        to_revoke, _, _ = _sort_for_revoke(tokens)
        form = RevokeForm(
            request.POST if request.POST.get("post") == "yes" else None,
            reason_required=bool(to_revoke),
        )
        if form.is_valid():
            self.revoke_tokens(
                request,
                tokens,
                form.cleaned_data["reason"],
                retry_hint="Select the same tokens and run “Revoke selected tokens” again "
                "to purge them again.",
            )
            return None  # back to the list, with its filters
        return self.render_revoke_confirmation(
            request,
            tokens,
            form,
            action="revoke_selected",
            cancel_url=request.get_full_path(),
        )

    def revoke_view(self, request, object_id):
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        token = self.get_object(request, unquote(object_id))
        if token is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = reverse("admin:tokens_accesstoken_change", args=[token.pk])
        to_revoke, _, _ = _sort_for_revoke([token])
        form = RevokeForm(
            request.POST if request.method == "POST" else None, reason_required=bool(to_revoke)
        )
        if form.is_valid():
            self.revoke_tokens(
                request,
                [token],
                form.cleaned_data["reason"],
                retry_hint="Use “Purge again” on this page to retry.",
            )
            return HttpResponseRedirect(change_url)
        return self.render_revoke_confirmation(
            request, [token], form, token=token, cancel_url=change_url
        )

    def render_revoke_confirmation(
        self, request, tokens, form, *, action=None, token=None, cancel_url
    ):
        to_revoke, to_purge, skipped = _sort_for_revoke(tokens)
        title = "Revoke access token" if token else "Revoke access tokens"
        if to_purge and not to_revoke:
            title = "Purge again"
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "media": self.media,
            "token": token,
            "tokens": tokens,
            "to_revoke": to_revoke,
            "to_purge": to_purge,
            "skipped": skipped,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": cancel_url,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/tokens/accesstoken/revoke_confirmation.html", context
        )

    def revoke_tokens(self, request, tokens, reason, *, retry_hint: str):
        """Revoke the revocable ``tokens`` and purge again those already revoked; say what
        was done, and, when the gateways' cache could not be purged (the revocations
        stand, committed), that it is not yet effective everywhere and how to retry."""
        result = failure = None
        try:
            with transaction.atomic():
                result = services.token_revoke_many(
                    tokens=tokens,
                    actor=request.user,
                    reason=reason,
                    remote_addr=_remote_addr(request),
                )
                # The service wrote each token's audit event; admin's History gets a line
                # too. Masked as the audit event is: django_admin_log is shown and dumped.
                LogEntry.objects.log_actions(
                    user_id=request.user.pk,
                    queryset=result.revoked,
                    action_flag=CHANGE,
                    change_message=f"Revoked. Reason: {mask_secrets(reason)}",
                )
        except CachePurgeFailed as error:  # raised once the transaction committed
            if result is None:  # raised inside: nothing was committed
                raise
            failure = error
        purged = [token for token, _ in result.skipped if token.revoked_at is not None]
        skipped = [(token, why) for token, why in result.skipped if token.revoked_at is None]
        if result.revoked:
            count = len(result.revoked)
            effect = (
                f" Requests using {'them' if count != 1 else 'it'} now receive "
                "HTTP 401 (Unauthorized)."
                if failure is None
                else ""
            )
            self.message_user(request, f"Revoked {_tokens(count)}.{effect}", messages.SUCCESS)
        if purged and failure is None:
            self.message_user(
                request,
                f"Purged {_tokens(len(purged))} already revoked from the gateways' cache "
                "again: requests using them receive HTTP 401 (Unauthorized).",
                messages.SUCCESS,
            )
        if failure is not None:
            self.message_user(request, f"{failure.message} {retry_hint}", messages.ERROR)
        # One message per reason, not per token: a bulk revoke may skip hundreds.
        by_reason = defaultdict(list)
        for token, why in skipped:
            by_reason[why].append(token.masked_code)
        for why, codes in by_reason.items():
            shown = ", ".join(codes[:5]) + (f" and {len(codes) - 5} more" if len(codes) > 5 else "")
            self.message_user(request, f"Skipped {shown}: {why}", messages.WARNING)
        return result


# --- Audit events --------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(
    CheckedListMixin,
    CheckedSelectionMixin,
    SecretSafeSearchMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
):
    list_display = ("created_at", "token_link", "action", "actor_label", "changes_display")
    list_filter = ("action", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("token",)
    list_per_page = 50
    ordering = ("-created_at", "-id")
    search_fields = ("actor_label", "token__owner", "^token__prefix")
    search_help_text = "Who acted, the token's owner, the start of a code, or a full token."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "token_link",
        "action",
        "actor_label",
        "actor",
        "changes_display",
        "token_version",
        "created_at",
        "remote_addr",
    )
    readonly_fields = fields
    Media = TokenAdminMedia

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if crypto.looks_like_token(term):
            return queryset.filter(token__in=AccessToken.objects.by_secret(term)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Token")
    def token_link(self, event):
        url = reverse("admin:tokens_accesstoken_change", args=[event.token_id])
        return format_html('<a href="{}">{}</a>', url, event.token.masked_code)

    @admin.display(description="Changes")
    def changes_display(self, event):
        return _describe_changes(event.changes)


# --- APIs, plans, apps ---------------------------------------------------------------


class PlanInline(admin.TabularInline):
    model = Plan
    fields = ("name", "rate_limit", "description")
    extra = 0


@admin.register(Api)
class ApiAdmin(ReportsPurgeFailures, CheckedListMixin, CheckedSelectionMixin, admin.ModelAdmin):
    list_display = ("name", "version", "base_path")
    search_fields = ("name", "base_path")
    ordering = ("name", "version")
    inlines = [PlanInline]


@admin.register(Plan)
class PlanAdmin(ReportsPurgeFailures, CheckedListMixin, CheckedSelectionMixin, admin.ModelAdmin):
    list_display = ("name", "api", "rate_limit")
    list_filter = ("api",)
    list_select_related = ("api",)
    search_fields = ("name", "api__name", "api__base_path")
    autocomplete_fields = ("api",)
    ordering = ("api__name", "name")


class SubscriptionForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ("api", "plan")

    def clean(self):
        cleaned = super().clean()
        api, plan = cleaned.get("api"), cleaned.get("plan")
        if api and plan and plan.api_id != api.pk:
            raise ValidationError(
                f"The plan “{plan.name}” belongs to {plan.api}, not to {api}.",
                code="plan_of_other_api",
            )
        return cleaned


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    form = SubscriptionForm
    extra = 0
    verbose_name_plural = "Subscriptions (the default APIs and plans of the app's tokens)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("api", "plan__api")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "plan":
            kwargs["queryset"] = Plan.objects.select_related("api")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(App)
class AppAdmin(ReportsPurgeFailures, CheckedListMixin, CheckedSelectionMixin, admin.ModelAdmin):
    """The client secret is stored as a digest: it is shown once, when the app is added
    or its secret regenerated, in the answer to that POST, and nowhere else."""

    list_display = ("name", "client_id", "can_introspect", "is_active", "created_at")
    list_filter = ("is_active", "can_introspect")
    search_fields = ("name", "client_id")
    date_hierarchy = "created_at"
    ordering = ("name",)
    fields = ("name", "client_id", "can_introspect", "is_active", "created_at")
    readonly_fields = ("client_id", "created_at")
    inlines = [SubscriptionInline]
    actions = ["regenerate_secret"]
    Media = TokenAdminMedia

    def get_urls(self):
        return [
            path(
                "<path:object_id>/regenerate-secret/",
                self.admin_site.admin_view(self.regenerate_secret_view),
                name="tokens_app_regenerate_secret",
            ),
            *super().get_urls(),
        ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            obj.issued_client_secret = services.app_regenerate_secret(app=obj)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(obj, "issued_client_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self.render_client_secrets(request, [(obj, secret)], added=True)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["can_regenerate_secret"] = self.has_change_permission(request, obj)
            context["regenerate_secret_url"] = reverse(
                "admin:tokens_app_regenerate_secret", args=[obj.pk]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Regenerate secret", permissions=["change"])
    def regenerate_secret(self, request, queryset):
        apps = list(queryset)
        if request.POST.get("post") == "yes":
            return self.regenerate_secrets(request, apps)
        return self.render_regenerate_confirmation(
            request, apps, action="regenerate_secret", cancel_url=request.get_full_path()
        )

    def regenerate_secret_view(self, request, object_id):
        app = self.get_object(request, unquote(object_id))
        if app is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, app):
            raise PermissionDenied
        if request.method == "POST":
            # The new secret is shown even when the gateways could not be told at once.
            return self.reporting_purge_failures(request, self.regenerate_secrets, [app])
        cancel_url = reverse("admin:tokens_app_change", args=[app.pk])
        return self.render_regenerate_confirmation(request, [app], cancel_url=cancel_url)

    def regenerate_secrets(self, request, apps):
        # All or none: a secret regenerated but never shown would only break a client.
        with transaction.atomic():
            issued = [(app, services.app_regenerate_secret(app=app)) for app in apps]
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=apps,
                action_flag=CHANGE,
                change_message="Regenerated the client secret.",
            )
        return self.render_client_secrets(request, issued)

    def render_regenerate_confirmation(self, request, apps, *, cancel_url, action=None):
        context = {
            **self.admin_site.each_context(request),
            "title": "Regenerate client secret",
            "opts": self.opts,
            "media": self.media,
            "apps": apps,
            "app": apps[0] if len(apps) == 1 and action is None else None,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": cancel_url,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/tokens/app/regenerate_secret_confirmation.html", context
        )

    def render_client_secrets(self, request, issued, *, added=False):
        """The POST's answer shows the secrets: never stored, never in a URL or a message."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Client secret" if len(issued) == 1 else "Client secrets",
            "opts": self.opts,
            "media": self.media,
            "issued": issued,
            "added": added,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tokens/app/client_secret.html", context)
