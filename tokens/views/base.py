"""What the portal's screens share: their permission check, the token a screen is about,
the address a change is recorded with, and the no-JavaScript "Add extra field"."""

from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from portal.middleware import remote_addr as remote_addr  # the screens import it from here
from tokens.models import AccessToken


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


def formset_data_with_new_row(data, prefix):
    """The no-JavaScript "Add extra field": the form's data with one more row (at most 60)."""
    data = data.copy()
    key = f"{prefix}-TOTAL_FORMS"
    try:
        total = int(data.get(key, 0))
    except ValueError:
        total = 0
    data[key] = str(min(total + 1, 60))
    return data
