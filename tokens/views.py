"""Portal screens: thin views that validate, call a service and render."""

import secrets as pysecrets

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.paginator import InvalidPage
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.decorators import method_decorator
from django.utils.http import urlencode
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.generic import DetailView, ListView

from tokens import crypto, services
from tokens.filters import TokenFilter
from tokens.forms import (
    ApiPlansForm,
    RevokeForm,
    TokenCreateForm,
    TokenEditForm,
    extra_fields_formset,
)
from tokens.gateway.cache import CachePurgeFailed
from tokens.models import AccessToken, Api, App
from tokens.pagination import SEARCH_EXACT_COUNT_LIMIT, EstimatedCountPaginator

PAGE_SIZES = (10, 25, 50, 100)


def remote_addr(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class PortalPermissionMixin(LoginRequiredMixin, PermissionRequiredMixin):
    """Anonymous → login page; logged in without the permission → 403."""


@method_decorator(never_cache, name="dispatch")
class TokenView(PortalPermissionMixin, View):
    """A screen about one token, found by its public id (never by its secret)."""

    def get_token(self) -> AccessToken:
        return get_object_or_404(
            AccessToken.objects.select_related("app", "created_by"),
            public_id=self.kwargs["public_id"],
        )


@method_decorator(never_cache, name="dispatch")
class TokenListView(PortalPermissionMixin, ListView):
    permission_required = "tokens.view_accesstoken"
    template_name = "tokens/token_list.html"
    context_object_name = "tokens"

    def get(self, request, *args, **kwargs):
        request.GET = _without_pasted_secret(request.GET)
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        """The quick search box posts here, so a pasted full token never lands in a URL
        (address bar, history, proxy and server logs); the answer is a redirect to the
        list's shareable address, with the other filters kept."""
        params = request.GET.copy()
        params["q"] = request.POST.get("q", "").strip()[:500]
        params = _without_pasted_secret(params)
        params.pop("page", None)
        if not params["q"]:
            del params["q"]
        return redirect(f"{request.path}?{params.urlencode()}" if params else request.path)

    def get_paginate_by(self, queryset):
        try:
            size = int(self.request.GET.get("per_page", 25))
        except ValueError:
            return 25
        return size if size in PAGE_SIZES else 25

    def get_queryset(self):
        self.filterset = TokenFilter(
            self.request.GET or None,
            queryset=AccessToken.objects.with_list_columns(),
            request=self.request,
        )
        return self.filterset.qs

    def paginate_queryset(self, queryset, page_size):
        """As ListView's, but an out-of-range or bad page number shows the last page, not a 404."""
        # Never an exact COUNT(*) of a million tokens on each page view (tokens.pagination).
        searching = bool(self.request.GET.get("q", "").strip())
        paginator = EstimatedCountPaginator(
            queryset, page_size, exact_count_limit=SEARCH_EXACT_COUNT_LIMIT if searching else None
        )
        number = self.request.GET.get("page") or 1
        try:
            page = paginator.page(number)
        except InvalidPage:
            page = paginator.page(paginator.num_pages if str(number).isdigit() else 1)
        return paginator, page, page.object_list, page.has_other_pages()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        params = self.request.GET.copy()
        params.pop("page", None)
        context.update(
            filter=self.filterset,
            query_without_page=params.urlencode(),
            query_without_search=urlencode(
                [(k, v) for k, vs in params.lists() if k != "q" for v in vs]
            ),
            sort=self.request.GET.get("o", ""),
            query_without_sort=urlencode(
                [(k, v) for k, vs in params.lists() if k not in ("o",) for v in vs]
            ),
            page_sizes=PAGE_SIZES,
        )
        return context


class TokenDetailView(PortalPermissionMixin, DetailView):
    permission_required = "tokens.view_accesstoken"
    template_name = "tokens/token_detail.html"
    context_object_name = "token"
    slug_field = slug_url_kwarg = "public_id"

    @method_decorator(never_cache)
    def dispatch(self, *args, **kwargs):
        return super().dispatch(*args, **kwargs)

    def get_queryset(self):
        return AccessToken.objects.with_list_columns().select_related("created_by")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["recent_events"] = self.object.events.all()[:5]
        context["revoke_url"] = self.request.build_absolute_uri("/oauth/revoke/")
        return context


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
                _formset_data_with_new_row(request.POST, extra.prefix),
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


def _without_pasted_secret(params):
    """``params`` with a pasted full token in ``q`` replaced by its masked code, which
    finds the same token by its display prefix, so the page never echoes the secret
    (search box, sort and page links all repeat ``q``)."""
    query = params.get("q", "").strip()
    if not crypto.looks_like_token(query):
        return params
    token = AccessToken.objects.by_secret(query).only("prefix", "suffix").first()
    params = params.copy()
    params["q"] = token.masked_code if token else crypto.display_parts(query)[0]
    return params


def _formset_data_with_new_row(data, prefix):
    data = data.copy()
    key = f"{prefix}-TOTAL_FORMS"
    try:
        total = int(data.get(key, 0))
    except ValueError:
        total = 0
    data[key] = str(min(total + 1, 60))
    return data


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
        form = RevokeForm(request.POST)
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
            extra = extra_fields_formset(_formset_data_with_new_row(request.POST, extra.prefix))
            return self.render_forms(form, extra, plans, nonce=nonce)
        if not (form.is_valid() and extra.is_valid() and plans.is_valid()):
            messages.error(request, "The token was not created: please correct the errors below.")
            return self.render_forms(form, extra, plans, nonce=nonce, status=400)
        app = form.cleaned_data["app"]
        if request.POST.get("use_subscriptions"):
            chosen = [s.plan for s in app.subscription_set.select_related("plan__api")]
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


class TokenHistoryView(PortalPermissionMixin, ListView):
    permission_required = ("tokens.view_accesstoken", "tokens.view_auditevent")
    template_name = "tokens/token_history.html"
    context_object_name = "events"
    paginate_by = 50

    @method_decorator(never_cache)
    def dispatch(self, *args, **kwargs):
        return super().dispatch(*args, **kwargs)

    def get_queryset(self):
        self.token = get_object_or_404(
            AccessToken.objects.select_related("app"), public_id=self.kwargs["public_id"]
        )
        return self.token.events.select_related("actor")

    def paginate_queryset(self, queryset, page_size):
        try:
            return super().paginate_queryset(queryset, page_size)
        except Http404:
            paginator = self.get_paginator(queryset, page_size)
            page = paginator.page(1)
            return paginator, page, page.object_list, page.has_other_pages()

    def get_context_data(self, **kwargs):
        return super().get_context_data(token=self.token, **kwargs)
