"""ROTATE: a new token in place of an active portal token; the old one keeps working for
the period chosen, then stops (``tokens.services.rotation``)."""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from tokens import services
from tokens.models import TokenRotation
from tokens.views.base import TokenView, remote_addr

# The periods offered, by the value the form posts.
GRACE_PERIODS = {
    "none": ("None (stops at once)", timedelta(0)),
    "1h": ("1 hour", timedelta(hours=1)),
    "24h": ("24 hours", timedelta(hours=24)),
    "7d": ("7 days", timedelta(days=7)),
}


class RotateForm(forms.Form):
    grace = forms.ChoiceField(
        label="Old token keeps working for",
        choices=[(value, label) for value, (label, _) in GRACE_PERIODS.items()],
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose how long the old token keeps working.",
            "invalid_choice": "Choose one of the periods offered.",
        },
    )

    def grace_period(self) -> timedelta:
        return GRACE_PERIODS[self.cleaned_data["grace"]][1]


class TokenRotateView(TokenView):
    # A new token is made and the old one is made to stop: both permissions.
    permission_required = ("tokens.add_accesstoken", "tokens.revoke_accesstoken")
    template_name = "tokens/token_rotate.html"

    def render_page(self, token, form, status=200):
        refusal = services.rotation_refusal(token)
        context = {"token": token, "form": None if refusal else form, "refusal": refusal}
        if refusal:
            context["replacement"] = (
                TokenRotation.objects.filter(old=token).select_related("new").first()
            )
        return render(self.request, self.template_name, context, status=status)

    def get(self, request, public_id):
        return self.render_page(self.get_token(), RotateForm())

    def post(self, request, public_id):
        token = self.get_token()
        form = RotateForm(request.POST)
        if not form.is_valid():
            return self.render_page(token, form, status=400)
        purge_failed = None
        try:
            issued = services.token_rotate(
                token=token,
                grace=form.grace_period(),
                actor=request.user,
                remote_addr=remote_addr(request),
            )
        except services.RotatedButNotPurged as exc:
            issued, purge_failed = exc.issued, exc.message
        except services.TokenServiceError as exc:
            # Also the answer to a reloaded confirmation: the token is rotated already,
            # and the new secret was shown once.
            messages.error(request, exc.message)
            return redirect(token)
        token.refresh_from_db()
        messages.success(request, f"Token {token.masked_code} was rotated.")
        # Rendered in the POST's answer, never stored or put in a URL: shown exactly once.
        return render(
            request,
            "tokens/token_rotated.html",
            {
                "token": issued.token,
                "secret": issued.secret,
                "old": token,
                "rotation": TokenRotation.objects.get(old=token),
                "purge_failed": purge_failed,
            },
        )
