"""A token's overview and its history."""

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.generic import DetailView, ListView

from tokens import services
from tokens.models import AccessToken
from tokens.views.base import PortalPermissionMixin


@method_decorator(never_cache, name="dispatch")
class TokenDetailView(PortalPermissionMixin, DetailView):
    permission_required = "tokens.view_accesstoken"
    template_name = "tokens/token_detail.html"
    context_object_name = "token"
    slug_field = slug_url_kwarg = "public_id"

    def get_queryset(self):
        return AccessToken.objects.with_list_columns().select_related("created_by")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["recent_events"] = self.object.events.all()[:5]
        context["revoke_url"] = self.request.build_absolute_uri("/oauth/revoke/")
        context["can_rotate"] = services.can_be_rotated(self.object)  # ROTATE's own rule
        return context


@method_decorator(never_cache, name="dispatch")
class TokenHistoryView(PortalPermissionMixin, ListView):
    permission_required = ("tokens.view_accesstoken", "tokens.view_auditevent")
    template_name = "tokens/token_history.html"
    context_object_name = "events"
    paginate_by = 50

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
