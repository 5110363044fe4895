from django.http import JsonResponse
from django.urls import path

from portal.urls import urlpatterns as portal_urlpatterns


def bare(request):
    """The baseline: a constant JSON through the portal's default middleware stack."""
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare), *portal_urlpatterns]
