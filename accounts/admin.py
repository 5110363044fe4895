"""The User admin, with two actions: end a user's sessions, reset their two-factor devices.

django-otp's own device admins are removed: they can show TOTP keys and add devices
for someone else. A lost authenticator is handled by "Reset two-factor
authentication", after which the user enrols again at the next login.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth.admin import UserAdmin
from django.db import models
from django.db.models import Count, Exists, OuterRef
from django.http import HttpResponseRedirect
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from accounts.sessions import end_user_sessions
from portal.logs import security_log
from tokens.admin.mixins import CheckedListMixin

User = get_user_model()

if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(CheckedListMixin, UserAdmin):
    list_display = (
        "username",
        "email",
        "is_staff",
        "is_superuser",
        "two_factor",
        "sessions",
        "last_login",
    )
    actions = ["end_sessions", "reset_two_factor"]
    # Checkbox lists, not Django's two-box selector: its icons carry ARIA attributes a
    # span may not have (axe-core, serious). The dates are facts, not settings.
    filter_horizontal = ()
    formfield_overrides = {
        models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple},
    }
    readonly_fields = ("last_login", "date_joined")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                has_totp=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
                session_count=Count("portal_sessions", distinct=True),
            )
        )

    @admin.display(description="Two-factor", boolean=True, ordering="has_totp")
    def two_factor(self, user):
        return user.has_totp

    @admin.display(description="Sessions", ordering="session_count")
    def sessions(self, user):
        return user.session_count

    @admin.action(description="End all sessions of the selected users", permissions=["change"])
    def end_sessions(self, request, queryset):
        total = 0
        for user in queryset:
            ended = end_user_sessions(user)
            total += ended
            security_log("session_ended_by_admin", actor=request.user, user=user.get_username())
        message = f"Ended {total} session(s) of {queryset.count()} user(s); they must log in again."
        if self._ended_own_session(request, queryset):
            return self._logged_out(request, message)
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(
        description="Reset two-factor authentication of the selected users (and end their "
        "sessions)",
        permissions=["change"],
    )
    def reset_two_factor(self, request, queryset):
        for user in queryset:
            mfa.reset_second_factor(user)
            end_user_sessions(user)
            security_log("authn_mfa_reset", actor=request.user, user=user.get_username())
        message = (
            f"Reset two-factor authentication of {queryset.count()} user(s): each enrols "
            "a new authenticator app at the next login."
        )
        if self._ended_own_session(request, queryset):
            return self._logged_out(request, message)
        self.message_user(request, message, messages.SUCCESS)

    @staticmethod
    def _ended_own_session(request, queryset) -> bool:
        return queryset.filter(pk=request.user.pk).exists()

    def _logged_out(self, request, message: str):
        """The acting administrator ended their own sessions, this one included: Django
        could not save it at the end of the request (it answers 400 then). Log out here
        too, as everywhere else, and go to the login page with the outcome."""
        logout(request)
        messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:login"))
