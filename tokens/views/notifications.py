"""E-mail notifications: a portal administrator's opt-in to the expiring tokens digest
(``manage.py notify_expiring``, tokens.services.notices)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.shortcuts import redirect
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.generic import FormView

from tokens import services
from tokens.services.notices import can_receive_notifications, notification_settings_of


class NotificationSettingsForm(forms.Form):
    expiring_tokens = forms.BooleanField(
        label="E-mail me when tokens are about to expire", required=False
    )


@method_decorator(never_cache, name="dispatch")
class NotificationSettingsView(LoginRequiredMixin, UserPassesTestMixin, FormView):
    """Only whoever the digest goes to may choose it: portal administrators (and
    superusers); anyone else logged in gets 403."""

    template_name = "tokens/notifications.html"
    form_class = NotificationSettingsForm

    def test_func(self):
        return can_receive_notifications(self.request.user)

    def get_initial(self):
        return {"expiring_tokens": notification_settings_of(self.request.user).expiring_tokens}

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs, has_email=bool(self.request.user.email))

    def form_valid(self, form):
        on = form.cleaned_data["expiring_tokens"]
        services.notification_settings_update(user=self.request.user, expiring_tokens=on)
        messages.success(
            self.request,
            "You will get an e-mail when tokens are about to expire."
            if on
            else "You will get no e-mail about tokens about to expire.",
        )
        return redirect("tokens:notifications")
