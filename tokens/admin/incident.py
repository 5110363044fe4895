"""Incident actions in the admin: an app's "Revoke all tokens" (an action on the list and
a button on the app's page, for a leaked client secret), and the jobs they start."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from tokens import jobs, services
from tokens.forms import AppRevokeForm
from tokens.models import Job
from tokens.views.base import remote_addr


class AppRevokeMixin:
    """For ``AppAdmin``: "Revoke all tokens" of one or more apps, OAuth-issued ones
    included, optionally with a new client secret each (the same services as the
    portal's page: ``jobs.start_app_revoke``)."""

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke-all-tokens/",
                self.admin_site.admin_view(self.revoke_all_tokens_view),
                name="tokens_app_revoke_all_tokens",
            ),
            *super().get_urls(),
        ]

    def has_revoke_permission(self, request):
        return request.user.has_perm("tokens.revoke_accesstoken")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["can_revoke_all_tokens"] = self.has_revoke_permission(request)
            context["revoke_all_tokens_url"] = reverse(
                "admin:tokens_app_revoke_all_tokens", args=[obj.pk]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Revoke all tokens", permissions=["revoke"])
    def revoke_all_tokens(self, request, queryset):
        apps = list(queryset)
        if request.POST.get("post") == "yes":
            return self.revoke_all_tokens_of(request, apps)
        return self.render_revoke_all_confirmation(
            request, apps, AppRevokeForm(), action="revoke_all_tokens"
        )

    def revoke_all_tokens_view(self, request, object_id):
        app = self.get_object(request, unquote(object_id))
        if app is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self.revoke_all_tokens_of(request, [app])
        return self.render_revoke_all_confirmation(request, [app], AppRevokeForm())

    def revoke_all_tokens_of(self, request, apps, *, action=None):
        form = AppRevokeForm(request.POST)
        if not form.is_valid():
            return self.render_revoke_all_confirmation(
                request, apps, form, action=request.POST.get("action") or None, status=400
            )
        regenerate = form.cleaned_data["regenerate_secret"]
        if regenerate and not self.has_change_permission(request):
            raise PermissionDenied
        started, issued = [], []
        for app in apps:
            job, secret = jobs.start_app_revoke(
                app=app,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                regenerate_secret=regenerate,
                remote_addr=remote_addr(request),
            )
            started.append(job)
            if secret is not None:
                issued.append((app, secret))
        for job in started:
            self.message_user(
                request,
                format_html(
                    '{}: {} revoked so far. <a href="{}">Follow the job</a>.',
                    job.description,
                    job.revoked,
                    job.get_absolute_url(),
                ),
                messages.SUCCESS,
            )
        if issued:
            return self.render_client_secrets(request, issued)
        return redirect(started[0].get_absolute_url() if len(started) == 1 else "tokens:jobs")

    def render_revoke_all_confirmation(self, request, apps, form, *, action=None, status=200):
        counts = []
        for app in apps:
            will, skipped = services.count_batch_outcome(
                app.tokens.all(), services.RevokeChannel.INCIDENT
            )
            counts.append((app, will, skipped))
        if not self.has_change_permission(request):
            form.fields["regenerate_secret"].widget = forms.HiddenInput()
            form.initial["regenerate_secret"] = False
        context = {
            "title": "Revoke all tokens",
            "counts": counts,
            "apps": apps,
            "app": apps[0] if len(apps) == 1 and action is None else None,
            "form": form,
            "action": action,
            "cancel_url": request.get_full_path(),
        }
        response = self.render_admin_page(
            request, "admin/tokens/app/revoke_all_tokens_confirmation.html", context
        )
        response.status_code = status
        return response


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs are records: nobody adds, changes or deletes them here."""

    list_display = ("created_at", "kind", "description", "actor_label", "status", "progress")
    list_filter = ("kind", "status")
    search_fields = ("description", "actor_label")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Job._meta.fields] + ["follow"]

    @admin.display(description="Progress")
    def progress(self, job):
        return f"{job.processed:,} of {job.total:,} ({job.percent}%), {job.revoked:,} revoked"

    @admin.display(description="In the portal")
    def follow(self, job):
        return format_html('<a href="{}">Follow the job</a>', job.get_absolute_url())

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("tokens.view_job") or request.user.has_perm(
            "tokens.view_accesstoken"
        )
