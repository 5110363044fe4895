"""Editing a token: its owner, extra fields and API plans, against a stale edit."""

from django.contrib import messages
from django.shortcuts import redirect, render

from tokens import services
from tokens.forms import ApiPlansForm, TokenEditForm, extra_fields_formset
from tokens.models import Api
from tokens.views.base import TokenView, formset_data_with_new_row, remote_addr


class TokenEditView(TokenView):
    permission_required = "tokens.change_accesstoken"
    template_name = "tokens/token_edit.html"

    def forms(self, token, data=None):
        links = list(token.api_links.select_related("plan"))
        return (
            TokenEditForm(data, initial={"owner": token.owner, "version": token.version}),
            extra_fields_formset(data, initial_pairs=token.extra_field_pairs()),
            ApiPlansForm(
                data,
                apis=Api.objects.prefetch_related("plans"),
                initial_plans=[link.plan for link in links],
            ),
        )

    def refuse_if_not_editable(self, token):
        if not token.can_be_edited():
            messages.error(
                self.request,
                f"This token is {token.status.label.lower()} and can no longer be edited.",
            )
            return redirect(token)
        return None

    def render_forms(self, token, basic, extra, plans, *, conflict=None, status=200):
        return render(
            self.request,
            self.template_name,
            {
                "token": token,
                "form": basic,
                "extra_formset": extra,
                "plans_form": plans,
                "conflict": conflict,
            },
            status=status,
        )

    def get(self, request, public_id):
        token = self.get_token()
        if refusal := self.refuse_if_not_editable(token):
            return refusal
        return self.render_forms(token, *self.forms(token))

    def post(self, request, public_id):
        token = self.get_token()
        if refusal := self.refuse_if_not_editable(token):
            return refusal
        basic, extra, plans = self.forms(token, request.POST)
        if "add_extra_field" in request.POST:
            # The no-JavaScript "Add extra field": show the form again with one more row.
            extra = extra_fields_formset(
                formset_data_with_new_row(request.POST, extra.prefix),
                initial_pairs=token.extra_field_pairs(),
            )
            return self.render_forms(token, basic, extra, plans)
        if not (basic.is_valid() and extra.is_valid() and plans.is_valid()):
            messages.error(request, "Nothing was saved: please correct the errors below.")
            return self.render_forms(token, basic, extra, plans, status=400)
        try:
            changed = services.token_update(
                token=token,
                expected_version=basic.cleaned_data["version"],
                owner=basic.cleaned_data["owner"],
                extra_fields=extra.pairs(),
                plans=plans.selected_plans(),
                actor=request.user,
                remote_addr=remote_addr(request),
            )
        except services.StaleTokenEdit as exc:
            messages.error(request, exc.message)
            token.refresh_from_db()
            if not token.can_be_edited():
                return redirect(token)
            # Keep the editor's input, but on the version now shown beside it: saving
            # again after the review applies it instead of being refused once more.
            data = request.POST.copy()
            data["version"] = str(token.version)
            basic = TokenEditForm(data, initial={"owner": token.owner, "version": token.version})
            return self.render_forms(
                token, basic, extra, plans, conflict=_current_values(token), status=409
            )
        except services.TokenServiceError as exc:
            messages.error(request, exc.message)
            return redirect(token)
        if changed:
            messages.success(request, f"Token {token.masked_code} was saved.")
        else:
            messages.info(request, "Nothing changed, so nothing was saved.")
        return redirect(token)


def _current_values(token):
    """What is saved now, shown beside the form after a refused (stale) edit."""
    return {
        "version": token.version,
        "owner": token.owner,
        "extra_fields": token.extra_field_pairs(),
        "plans": [
            f"{link.api} — {link.plan.name}"
            for link in token.api_links.select_related("api", "plan")
        ],
    }
