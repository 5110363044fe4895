"""Revoking in the admin: the "Revoke selected tokens" action, the change page's Revoke
button, and the confirmation they share.

Which tokens may be revoked is the service's rule (``services.portal_revoke_skip_reason``);
the reason is checked by the portal's ``RevokeForm`` (whether one is required is the
service's rule, ``services.revoke_reason_required``); revoking, its audit events and the
cache purges are ``services.token_revoke_many``. Here: what to show and say.
"""

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone

from portal.logs import mask_secrets
from portal.middleware import remote_addr
from tokens import forms, services
from tokens.gateway.cache import CachePurgeFailed

# A bulk revoke runs one transaction of a few queries per token; beyond this many, ask
# for a narrower selection rather than hold locks for minutes.
MAX_BULK_REVOKE = 1000


class AdminRevokeForm(forms.RevokeForm):
    """The portal's form: its checks (length, no control characters) and its rule of
    whether a reason is required (the service's); here with the admin's wording."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        reason = self.fields["reason"]
        reason.widget.attrs["cols"] = 60
        reason.help_text = (
            "Recorded in each token's history, e.g. “leaked in a public repository, ticket #1234”."
        )


def sort_for_revoke(tokens, now=None):
    """The tokens to revoke; those already revoked (purged again, which retries a purge
    that failed); and the others, each with why it is left alone."""
    now = now or timezone.now()
    to_revoke, to_purge, skipped = [], [], []
    for each in tokens:
        why = services.portal_revoke_skip_reason(each, now=now)
        if why is None:
            to_revoke.append(each)
        elif each.revoked_at is not None:
            to_purge.append(each)
        else:
            skipped.append((each, why))
    return to_revoke, to_purge, skipped


def _tokens(count: int) -> str:
    return f"{count} token{'s' if count != 1 else ''}"


class RevokesTokens:
    """For the access-token admin (with ``AdminPageMixin``)."""

    def has_revoke_permission(self, request, obj=None):
        codename = get_permission_codename("revoke", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="tokens_accesstoken_revoke",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["can_revoke"] = self.has_revoke_permission(request, obj)
            context["revoke_skip_reason"] = services.portal_revoke_skip_reason(obj)
            context["revoke_url"] = reverse("admin:tokens_accesstoken_revoke", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        tokens = list(queryset.select_related("app")[: MAX_BULK_REVOKE + 1])
        if len(tokens) > MAX_BULK_REVOKE:
            self.message_user(
                request,
                f"Select at most {MAX_BULK_REVOKE:,} tokens to revoke at once; "
                "narrow the list with a search or a filter.",
                messages.ERROR,
            )
            return None
        sorted_tokens = sort_for_revoke(tokens)
        form = AdminRevokeForm(
            request.POST if request.POST.get("post") == "yes" else None,
            revoking=bool(sorted_tokens[0]),
        )
        if form.is_valid():
            self.revoke_tokens(
                request,
                tokens,
                form.cleaned_data["reason"],
                retry_hint="Select the same tokens and run “Revoke selected tokens” again "
                "to purge them again.",
            )
            return None  # back to the list, with its filters
        return self.render_revoke_confirmation(
            request,
            tokens,
            sorted_tokens,
            form,
            action="revoke_selected",
            cancel_url=request.get_full_path(),
        )

    def revoke_view(self, request, object_id):
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        token = self.get_object(request, unquote(object_id))
        if token is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = reverse("admin:tokens_accesstoken_change", args=[token.pk])
        sorted_tokens = sort_for_revoke([token])
        form = AdminRevokeForm(
            request.POST if request.method == "POST" else None,
            revoking=bool(sorted_tokens[0]),
        )
        if form.is_valid():
            self.revoke_tokens(
                request,
                [token],
                form.cleaned_data["reason"],
                retry_hint="Use “Purge again” on this page to retry.",
            )
            return HttpResponseRedirect(change_url)
        return self.render_revoke_confirmation(
            request, [token], sorted_tokens, form, token=token, cancel_url=change_url
        )

    def render_revoke_confirmation(
        self, request, tokens, sorted_tokens, form, *, action=None, token=None, cancel_url
    ):
        to_revoke, to_purge, skipped = sorted_tokens
        title = "Revoke access token" if token else "Revoke access tokens"
        if to_purge and not to_revoke:
            title = "Purge again"
        context = {
            "title": title,
            "token": token,
            "tokens": tokens,
            "to_revoke": to_revoke,
            "to_purge": to_purge,
            "skipped": skipped,
            "form": form,
            "action": action,
            "cancel_url": cancel_url,
        }
        return self.render_admin_page(
            request, "admin/tokens/accesstoken/revoke_confirmation.html", context
        )

    def revoke_tokens(self, request, tokens, reason, *, retry_hint: str):
        """Revoke the revocable ``tokens`` and purge again those already revoked; say what
        was done, and, when the gateways' cache could not be purged (the revocations
        stand, committed), that it is not yet effective everywhere and how to retry."""
        result = failure = None
        try:
            with transaction.atomic():
                result = services.token_revoke_many(
                    tokens=tokens,
                    actor=request.user,
                    reason=reason,
                    remote_addr=remote_addr(request),
                )
                # The service wrote each token's audit event; admin's History gets a line
                # too. Masked as the audit event is: django_admin_log is shown and dumped.
                LogEntry.objects.log_actions(
                    user_id=request.user.pk,
                    queryset=result.revoked,
                    action_flag=CHANGE,
                    change_message=f"Revoked. Reason: {mask_secrets(reason)}",
                )
        except CachePurgeFailed as error:  # raised once the transaction committed
            if result is None:  # raised inside: nothing was committed
                raise
            failure = error
        purged = [token for token, _ in result.skipped if token.revoked_at is not None]
        skipped = [(token, why) for token, why in result.skipped if token.revoked_at is None]
        if result.revoked:
            count = len(result.revoked)
            effect = (
                f" Requests using {'them' if count != 1 else 'it'} now receive "
                "HTTP 401 (Unauthorized)."
                if failure is None
                else ""
            )
            self.message_user(request, f"Revoked {_tokens(count)}.{effect}", messages.SUCCESS)
        if purged and failure is None:
            self.message_user(
                request,
                f"Purged {_tokens(len(purged))} already revoked from the gateways' cache "
                "again: requests using them receive HTTP 401 (Unauthorized).",
                messages.SUCCESS,
            )
        if failure is not None:
            self.message_user(request, f"{failure.message} {retry_hint}", messages.ERROR)
        # One message per reason, not per token: a bulk revoke may skip hundreds.
        by_reason = defaultdict(list)
        for token, why in skipped:
            by_reason[why].append(token.masked_code)
        for why, codes in by_reason.items():
            shown = ", ".join(codes[:5]) + (f" and {len(codes) - 5} more" if len(codes) > 5 else "")
            self.message_user(request, f"Skipped {shown}: {why}", messages.WARNING)
        return result
