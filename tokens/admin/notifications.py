"""E-mail notifications in the admin: who opted in, and which expiry notices went out
(read-only: written by ``manage.py notify_expiring``)."""

from django.contrib import admin

from tokens.admin.mixins import ReadOnlyAdminMixin
from tokens.models import ExpiryNotice, NotificationSettings


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "expiring_tokens")
    list_filter = ("expiring_tokens",)
    search_fields = ("user__username", "user__email")
    raw_id_fields = ("user",)


@admin.register(ExpiryNotice)
class ExpiryNoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("token", "threshold_days", "sent_at", "recipients")
    list_filter = ("threshold_days",)
    list_select_related = ("token",)
    date_hierarchy = "sent_at"
    raw_id_fields = ("token",)
