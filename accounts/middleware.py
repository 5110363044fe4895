from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from accounts.mfa import has_second_factor, mfa_required

# What a user who passed the password but not yet the second factor may still reach.
EXEMPT_VIEWS = frozenset(
    {"login", "logout", "mfa-verify", "mfa-setup", "admin-login", "admin:logout", "gateway-auth"}
)
# Machine endpoints authenticate their callers themselves, never by session.
EXEMPT_NAMESPACES = frozenset({"oauth"})


class MfaRequiredMiddleware:
    """After ``OTPMiddleware``: a user who must use two-factor authentication (``mfa_required``:
    staff under the policy, and anyone with a device, debug mode too) and has not passed it
    in this session reaches nothing but the verification (or, without a device yet, the
    enrolment) page, in the portal and in Django admin alike."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is not None and (
            match.view_name in EXEMPT_VIEWS or match.namespace in EXEMPT_NAMESPACES
        ):
            return None
        user = request.user
        if not user.is_authenticated or user.is_verified() or not mfa_required(user):
            return None
        target = reverse("mfa-verify" if has_second_factor(user) else "mfa-setup")
        next_url = request.get_full_path() if request.method in ("GET", "HEAD") else ""
        return redirect_to_login(next_url, target)
