"""The tokens' history in the admin: the audit events' own list, and the History inline
of a token's page. Read-only: nobody writes history by hand."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tokens import crypto
from tokens.admin.mixins import (
    CheckedListMixin,
    CheckedSelectionMixin,
    ReadOnlyAdminMixin,
    SecretSafeSearchMixin,
    TokenAdminMedia,
)
from tokens.models import AccessToken, AuditEvent
from tokens.pagination import EstimatedCountPaginator
from tokens.templatetags.portal import change_text, field_label, when


def describe_changes(changes: dict):
    # Worded as the portal's History tab words them.
    rows = (
        (field_label(field), change_text(before), change_text(after))
        for field, (before, after) in (changes or {}).items()
    )
    return format_html_join("", '<div class="audit-change">{}: {} → {}</div>', rows) or "—"


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
        return when(event.created_at)

    @admin.display(description="Who")
    def who(self, event):
        return event.actor_label

    @admin.display(description="Changes")
    def changes_display(self, event):
        return describe_changes(event.changes)

    @admin.display(description="Remote address")
    def remote_address(self, event):
        return event.remote_addr or "—"


@admin.register(AuditEvent)
class AuditEventAdmin(
    CheckedListMixin,
    CheckedSelectionMixin,
    SecretSafeSearchMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
):
    list_display = ("created", "token_link", "action", "actor_label", "changes_display")
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

    @admin.display(description="Created at", ordering="created_at")
    def created(self, event):
        return when(event.created_at)

    @admin.display(description="Token")
    def token_link(self, event):
        url = reverse("admin:tokens_accesstoken_change", args=[event.token_id])
        return format_html('<a href="{}">{}</a>', url, event.token.masked_code)

    @admin.display(description="Changes")
    def changes_display(self, event):
        return describe_changes(event.changes)
