from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts.views import admin_login
from tokens import secret_scanning
from tokens.gateway.forward_auth import forward_auth

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="tokens:list", permanent=False)),
    # Before Django's auth URLs: the throttled login, two-factor verification and enrolment.
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/login/", admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("tokens/", include("tokens.urls")),
    path("oauth/", include("tokens.oauth.urls")),
    # Usually answered by GatewayFastPathMiddleware before URL resolution.
    path("gateway/auth", forward_auth, name="gateway-auth"),
    path("secret-scanning/github/", secret_scanning.github, name="secret-scanning-github"),
]
