"""Revoking a token from the portal, and the retry of a purge that failed."""

from django.contrib import messages
from django.shortcuts import redirect, render

from tokens import services
from tokens.forms import RevokeForm
from tokens.gateway.cache import CachePurgeFailed
from tokens.views.base import TokenView, remote_addr


class TokenRevokeView(TokenView):
    permission_required = "tokens.revoke_accesstoken"
    template_name = "tokens/token_revoke.html"

    def render_page(self, token, form, status=200, purge_failed=None):
        context = {
            "token": token,
            "form": form,
            "revoke_url": self.request.build_absolute_uri("/oauth/revoke/"),
            "purge_failed": purge_failed,
        }
        return render(self.request, self.template_name, context, status=status)

    def get(self, request, public_id):
        token = self.get_token()
        if token.status == "revoked":
            messages.info(request, "This token is already revoked.")
            return redirect(token)
        return self.render_page(token, RevokeForm())

    def post(self, request, public_id):
        token = self.get_token()
        # Retrying a purge (the token is revoked already) asks no reason.
        form = RevokeForm(request.POST, revoking=token.revoked_at is None)
        if not form.is_valid():
            return self.render_page(token, form, status=400)
        try:
            revoked = services.token_revoke(
                token=token,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                remote_addr=remote_addr(request),
            )
        except CachePurgeFailed as exc:
            # Revoked, but some gateway may still accept it from the cache: say so, and
            # offer the retry (a revoke of a revoked token purges again).
            token.refresh_from_db()
            return self.render_page(token, RevokeForm(), status=503, purge_failed=exc.message)
        except services.TokenServiceError as exc:
            messages.error(request, exc.message)
            return redirect(token)
        if revoked:
            messages.success(
                request,
                f"Token {token.masked_code} is revoked. "
                "Requests using it now receive HTTP 401 (Unauthorized).",
            )
        else:
            messages.info(
                request, "This token was already revoked; the gateways' cache was told again."
            )
        return redirect(token)
