"""Access tokens in the admin, for support staff: find a token (also by its full value),
read it and its history, revoke it (see ``tokens.admin.revoke``).

Rules live in the models and services: the admin revokes through the services (audit
event, cache purge), never edits a token directly, and never shows a secret or a digest
(nor keeps one in ``django_admin_log``: a pasted reason is masked). The list is built
for a million tokens: no exact ``COUNT(*)`` once the table is big
(``EstimatedCountPaginator``), no query per row, filters that cost at most one small
query each, and no date hierarchy (its year list scans the whole table).
"""

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ORDER_VAR
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext

from tokens.admin.audit import AuditEventInline
from tokens.admin.mixins import (
    AdminPageMixin,
    CheckedChangeList,
    CheckedSelectionMixin,
    ReadOnlyAdminMixin,
    SecretSafeSearchMixin,
    TokenAdminMedia,
    row_id,
)
from tokens.admin.revoke import RevokesTokens
from tokens.models import AccessToken, Api, Plan, TokenStatus
from tokens.pagination import SEARCH_EXACT_COUNT_LIMIT, EstimatedCountPaginator
from tokens.templatetags.portal import when


def _when(value):
    """A time in the list as the portal writes it: ``<time>`` in the one format
    (portal.timefmt). Admin's localized display goes through the translation machinery
    at about 50 µs a cell, and a page has 150 of them; this is a strftime."""
    return None if value is None else when(value)


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


class LeakedFilter(admin.SimpleListFilter):
    """Tokens a secret scanner reported public (``services.leaks``)."""

    title = "leaked"
    parameter_name = "leaked"

    def lookups(self, request, model_admin):
        return [("yes", "Leaked"), ("no", "Not reported")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(leaked_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(leaked_at__isnull=True)
        return queryset


class TokenLinkFilter(admin.SimpleListFilter):
    """The tokens linked to one API or plan (``linked``: the queryset's method for it)."""

    linked: str

    def queryset(self, request, queryset):
        linked_id = row_id(self.value())
        if linked_id is None:
            return queryset  # not a row id ("²", beyond 64 bits): ignored
        return getattr(queryset, self.linked)([linked_id])


class ApiFilter(TokenLinkFilter):
    title = "API"
    parameter_name = "api"
    linked = "with_api"

    def lookups(self, request, model_admin):
        return [(api.pk, str(api)) for api in Api.objects.all()]


class PlanFilter(TokenLinkFilter):
    title = "plan"
    parameter_name = "plan"
    linked = "with_plan"

    def lookups(self, request, model_admin):
        return [
            (plan.pk, f"{plan.api} – {plan.name}") for plan in Plan.objects.select_related("api")
        ]


@admin.register(AccessToken)
class AccessTokenAdmin(
    RevokesTokens,
    AdminPageMixin,
    CheckedSelectionMixin,
    SecretSafeSearchMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
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
        LeakedFilter,
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
                    "leaked_at",
                    "leak_url",
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
