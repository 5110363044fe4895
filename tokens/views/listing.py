"""The Access Tokens list: quick search, Advanced filter, sort and pages."""

from django.core.paginator import InvalidPage
from django.shortcuts import redirect
from django.utils.decorators import method_decorator
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.generic import ListView

from tokens.filters import token_filter, without_pasted_secret
from tokens.pagination import SEARCH_EXACT_COUNT_LIMIT, EstimatedCountPaginator
from tokens.views.base import PortalPermissionMixin

PAGE_SIZES = (10, 25, 50, 100)


@method_decorator(never_cache, name="dispatch")
class TokenListView(PortalPermissionMixin, ListView):
    permission_required = "tokens.view_accesstoken"
    template_name = "tokens/token_list.html"
    context_object_name = "tokens"

    def get(self, request, *args, **kwargs):
        request.GET = without_pasted_secret(request.GET)
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        """The quick search box posts here, so a pasted full token never lands in a URL
        (address bar, history, proxy and server logs); the answer is a redirect to the
        list's shareable address, with the other filters kept."""
        params = request.GET.copy()
        params["q"] = request.POST.get("q", "").strip()[:500]
        params = without_pasted_secret(params)
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
        self.filterset = token_filter(self.request.GET, request=self.request)
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
