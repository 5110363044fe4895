"""The catalogue in the admin, for superusers: APIs, their plans, and apps with their
subscriptions. An app's client secret is stored as a digest: it is shown once, when the app
is added or its secret regenerated ("Regenerate secret"), and nowhere else. Saving any of
them purges what the gateways cache of it (``ReportsPurgeFailures``)."""

from django import forms
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import path, reverse

from tokens import services
from tokens.admin.incident import AppRevokeMixin
from tokens.admin.mixins import (
    AdminPageMixin,
    CheckedListMixin,
    CheckedSelectionMixin,
    LabelledTabularInline,
    ReportsPurgeFailures,
    TokenAdminMedia,
)
from tokens.models import Api, App, Plan, Subscription


class PlanInline(LabelledTabularInline):
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


class SubscriptionInline(LabelledTabularInline):
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
class AppAdmin(
    AppRevokeMixin,
    ReportsPurgeFailures,
    AdminPageMixin,
    CheckedListMixin,
    CheckedSelectionMixin,
    admin.ModelAdmin,
):
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
    actions = ["regenerate_secret", "revoke_all_tokens"]
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
            "title": "Regenerate client secret",
            "apps": apps,
            "app": apps[0] if len(apps) == 1 and action is None else None,
            "action": action,
            "cancel_url": cancel_url,
        }
        return self.render_admin_page(
            request, "admin/tokens/app/regenerate_secret_confirmation.html", context
        )

    def render_client_secrets(self, request, issued, *, added=False):
        """The POST's answer shows the secrets: never stored, never in a URL or a message."""
        context = {
            "title": "Client secret" if len(issued) == 1 else "Client secrets",
            "issued": issued,
            "added": added,
        }
        return self.render_admin_page(request, "admin/tokens/app/client_secret.html", context)
