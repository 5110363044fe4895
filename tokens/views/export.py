"""Export CSV: every token the Access Tokens list's query string selects, all pages, streamed.

The rows and the choices behind them (columns, encoding, formula neutralising) are in
``tokens.export``. A filter that cannot be read is refused with 400 and says which: the
list shows such a filter as "not applied", but a file has no room for that warning, and
an export of more tokens than asked for is worse than none.
"""

from datetime import UTC

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from portal.logs import security_log
from tokens import export
from tokens.filters import token_filter, without_pasted_secret
from tokens.models import AccessToken
from tokens.views.base import PortalPermissionMixin

# The list's own parameters that select no tokens.
_NOT_FILTERS = ("page", "per_page")


@method_decorator(never_cache, name="dispatch")
class TokenExportView(PortalPermissionMixin, View):
    permission_required = "tokens.view_accesstoken"

    def get(self, request, *args, **kwargs):
        params = without_pasted_secret(request.GET).copy()
        for key in _NOT_FILTERS:
            params.pop(key, None)
        filterset = token_filter(params, request=request, queryset=AccessToken.objects.all())
        if filterset.form.errors:  # an unbound (no filter at all) form has none
            problems = "; ".join(
                f"{filterset.form.fields[name].label if name in filterset.form.fields else name}:"
                f" {' '.join(errors)}"
                for name, errors in filterset.form.errors.items()
            )
            return HttpResponse(
                f"Nothing exported: these filters could not be read: {problems}\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        now = timezone.now()
        security_log("tokens_exported", filter=params.urlencode())
        response = StreamingHttpResponse(
            export.csv_bytes(filterset.qs, now=now), content_type="text/csv; charset=utf-8"
        )
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="access-tokens-{stamp}.csv"'
        return response
