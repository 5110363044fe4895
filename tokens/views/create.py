"""A new token: its form, and the page that shows its secret once."""

import secrets as pysecrets

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from tokens import services
from tokens.forms import ApiPlansForm, TokenCreateForm, extra_fields_formset
from tokens.models import Api, App
from tokens.views.base import PortalPermissionMixin, formset_data_with_new_row, remote_addr


class TokenCreateView(PortalPermissionMixin, View):
    permission_required = "tokens.add_accesstoken"
    template_name = "tokens/token_create.html"
    # A refresh of the "created" page must not issue a second token: each form carries a
    # one-time nonce, remembered in the session with the token it created.
    session_key = "token_create_nonces"

    def forms(self, data=None):
        return (
            TokenCreateForm(data),
            extra_fields_formset(data),
            ApiPlansForm(data, apis=Api.objects.prefetch_related("plans")),
        )

    def render_forms(self, form, extra, plans, *, nonce=None, status=200):
        subscriptions = {
            str(app.pk): {str(s.api_id): s.plan_id for s in app.subscription_set.all()}
            for app in App.objects.filter(is_active=True).prefetch_related("subscription_set")
        }
        return render(
            self.request,
            self.template_name,
            {
                "form": form,
                "extra_formset": extra,
                "plans_form": plans,
                "nonce": nonce or pysecrets.token_urlsafe(16),
                "subscriptions": subscriptions,
                "use_subscriptions": self.request.POST.get("use_subscriptions", "on")
                if self.request.method == "POST"
                else "on",
            },
            status=status,
        )

    @method_decorator(never_cache)
    def get(self, request):
        return self.render_forms(*self.forms())

    @method_decorator(never_cache)
    def post(self, request):
        nonce = request.POST.get("nonce", "")[:64]
        done = request.session.get(self.session_key, {})
        if nonce and nonce in done:
            messages.info(
                request,
                "This token was already created; its secret was shown once and cannot "
                "be shown again.",
            )
            return redirect("tokens:detail", public_id=done[nonce])
        form, extra, plans = self.forms(request.POST)
        if "add_extra_field" in request.POST:
            extra = extra_fields_formset(formset_data_with_new_row(request.POST, extra.prefix))
            return self.render_forms(form, extra, plans, nonce=nonce)
        if not (form.is_valid() and extra.is_valid() and plans.is_valid()):
            messages.error(request, "The token was not created: please correct the errors below.")
            return self.render_forms(form, extra, plans, nonce=nonce, status=400)
        app = form.cleaned_data["app"]
        if request.POST.get("use_subscriptions"):
            chosen = app.default_plans()
        else:
            chosen = plans.selected_plans()
        try:
            issued = services.token_create(
                app=app,
                owner=form.cleaned_data["owner"],
                plans=chosen,
                extra_fields=extra.pairs(),
                expires_at=form.expires_at(),
                actor=request.user,
                remote_addr=remote_addr(request),
            )
        except services.TokenServiceError as exc:
            messages.error(request, exc.message)
            return self.render_forms(form, extra, plans, nonce=nonce, status=400)
        if nonce:
            done = dict(list(done.items())[-20:])
            done[nonce] = str(issued.token.public_id)
            request.session[self.session_key] = done
        messages.success(request, f"Token {issued.token.masked_code} was created.")
        # Rendered in the POST's answer, never stored or put in a URL: shown exactly once.
        return render(
            request,
            "tokens/token_created.html",
            {"token": issued.token, "secret": issued.secret},
        )
