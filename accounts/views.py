"""Login (throttled), two-factor verification and enrolment, recovery codes."""

import logging
from urllib.parse import quote

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import mfa, throttle
from accounts.forms import OtpCodeForm
from accounts.sessions import rename_session
from portal.logs import mask_secrets, security_log
from portal.middleware import remote_addr
from tokens import ratelimit

LOGIN_FAILURES = "login_user"
MFA_FAILURES = "mfa"


def _too_many(response, wait: int):
    response["Retry-After"] = str(wait)
    return response


def _typed_username(typed: str) -> dict:
    """What a login's log line says of the name typed: the user's name when it names a
    user; otherwise a short keyed hash and the length. People type their password into
    the username box, or paste a token there: an unknown name is never logged in clear.
    The hash (keyed with SECRET_KEY, of the name as the failure limit counts it) lets
    one see the same unknown name tried again without learning it."""
    user_model = get_user_model()
    name = user_model.normalize_username(typed.strip())
    # (No user's name holds a NUL, and PostgreSQL refuses one in a query's text.)
    known = (
        "\x00" not in name
        and user_model._default_manager.filter(**{user_model.USERNAME_FIELD: name}).exists()
    )
    if known:
        return {"username": mask_secrets(name)}
    key = throttle.account_key(typed).encode("utf-8", "surrogatepass")
    keyed = salted_hmac("accounts.login.username", key).hexdigest()
    return {"username": f"unknown {keyed[:12]}", "username_length": len(typed)}


class LoginView(auth_views.LoginView):
    """Django's login (``sensitive_post_parameters``, CSRF, never cached), throttled:
    per client address on every attempt, per account on failures; 429 with Retry-After."""

    def post(self, request, *args, **kwargs):
        username = str(request.POST.get("username", ""))[:150]
        wait = ratelimit.retry_after("login", remote_addr(request) or "")
        if wait is None:
            wait = throttle.locked_for(LOGIN_FAILURES, username)
        if wait is not None:
            security_log(
                "authn_login_lock",
                level=logging.WARNING,
                retry_after=wait,
                **_typed_username(username),
            )
            context = self.get_context_data(form=self.get_form_class()(request), throttled=wait)
            return _too_many(self.render_to_response(context, status=429), wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        username = str(self.request.POST.get("username", ""))[:150]
        throttle.record_failure(LOGIN_FAILURES, username)
        security_log("authn_login_fail", level=logging.WARNING, **_typed_username(username))
        return super().form_invalid(form)

    def form_valid(self, form):
        throttle.clear_failures(LOGIN_FAILURES, form.get_user().get_username())
        return super().form_valid(form)


def admin_login(request):
    """Django admin logs in through the portal's login: one throttled, two-factor door."""
    next_url = request.GET.get("next") or reverse("admin:index")
    return redirect_to_login(next_url, reverse("login"))


def _next_url(request) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


def _failure_key(user) -> str:
    return f"user:{user.pk}"


@method_decorator([never_cache, sensitive_post_parameters("code")], name="dispatch")
class SecondFactorView(LoginRequiredMixin, View):
    """A page that checks one code: the account's failure budget, the form, the device's
    own back-off, then the code; ``device_for`` names the device, ``passed`` answers."""

    template_name = ""
    form_options: dict = {}

    def device_for(self, form) -> tuple:
        """The device the code in ``form`` is for (None: the user has none) and its method."""
        raise NotImplementedError

    def passed(self, device, method: str):
        """The answer to a right code for ``device``."""
        raise NotImplementedError

    def get(self, request):
        return self.render_page(OtpCodeForm(**self.form_options))

    def post(self, request):
        user = request.user
        form = OtpCodeForm(request.POST, **self.form_options)
        wait = throttle.locked_for(MFA_FAILURES, _failure_key(user))
        if wait is not None:
            return self.throttled(form, wait)
        if not form.is_valid():
            return self.failed(form, "malformed")
        device, method = self.device_for(form)
        if device is None:
            return self.failed(form, method)
        wait = mfa.device_wait(device)
        if wait is not None:
            return self.throttled(form, wait)
        verified = django_otp.verify_token(user, device.persistent_id, form.cleaned_data["code"])
        if verified is None:
            return self.failed(form, method)
        return self.passed(verified, method)

    def render_page(self, form, *, status=200, **context):
        context.update(form=form, next=_next_url(self.request))
        return render(self.request, self.template_name, context, status=status)

    def throttled(self, form, wait: int, **context):
        security_log(
            "authn_mfa_lock", level=logging.WARNING, actor=self.request.user, retry_after=wait
        )
        form.add_error(None, f"Too many attempts. Try again in {wait} seconds.")
        return _too_many(self.render_page(form, status=429, **context), wait)

    def failed(self, form, method: str, **context):
        throttle.record_failure(MFA_FAILURES, _failure_key(self.request.user))
        security_log(
            "authn_mfa_fail", level=logging.WARNING, actor=self.request.user, method=method
        )
        form.add_error("code", "That code is not valid. Check it and try again.")
        return self.render_page(form, **context)

    def complete(self, device, method: str) -> None:
        """The session has passed the second factor: remember the device, renew the key."""
        request = self.request
        old_key = request.session.session_key
        django_otp.login(request, device)
        request.session.cycle_key()
        rename_session(old_key=old_key, new_key=request.session.session_key)
        throttle.clear_failures(MFA_FAILURES, _failure_key(request.user))
        security_log("authn_mfa_success", actor=request.user, method=method)


class MfaVerifyView(SecondFactorView):
    """After the password: a code from the authenticator app, or a recovery code."""

    template_name = "accounts/mfa_verify.html"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            if request.user.is_verified():
                return redirect(_next_url(request))
            if not mfa.has_second_factor(request.user):
                return redirect_to_login(_next_url(request), reverse("mfa-setup"))
        return super().dispatch(request, *args, **kwargs)

    def device_for(self, form) -> tuple:
        if form.is_totp:
            return mfa.confirmed_totp_device(self.request.user), "totp"
        return mfa.recovery_device(self.request.user), "recovery_code"

    def passed(self, device, method: str):
        self.complete(device, method)
        if method == "recovery_code":
            left = device.codes.count()
            security_log("authn_mfa_recovery_code_used", actor=self.request.user, remaining=left)
            messages.warning(
                self.request,
                f"You used a recovery code; {left} left. Each works once: "
                "generate new ones under Two-factor authentication if you are running out.",
            )
        return redirect(_next_url(self.request))


class MfaSetupView(SecondFactorView):
    """Enrolment: scan the QR code (or type the key), confirm one code, get recovery codes."""

    template_name = "accounts/mfa_setup.html"
    form_options = {"allow_recovery_code": False}

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and mfa.has_second_factor(request.user):
            if request.user.is_verified():
                return redirect("account-security")
            return redirect_to_login(_next_url(request), reverse("mfa-verify"))
        return super().dispatch(request, *args, **kwargs)

    def render_page(self, form, *, status=200, **context):
        device = mfa.pending_totp_device(self.request.user)
        context.update(qr_code=mfa.qr_code_data_uri(device), key=mfa.secret_for_typing(device))
        return super().render_page(form, status=status, **context)

    def device_for(self, form) -> tuple:
        return mfa.pending_totp_device(self.request.user), "totp"

    def passed(self, device, method: str):
        user = self.request.user
        codes = mfa.confirm_enrolment(user, device)
        device.refresh_from_db()
        self.complete(device, method)
        security_log("authn_mfa_enrolled", actor=user)
        return _recovery_codes_page(
            self.request, codes, next_url=_next_url(self.request), enrolled=True
        )


RECOVERY_CODES_FILENAME = "token-portal-recovery-codes.txt"


def _recovery_codes_page(request, codes: list[str], *, next_url: str, enrolled: bool):
    """The one time ``codes`` are shown: listed, to copy (js/account.js), and to download
    as a text file. The download is a ``data:`` link written into this same answer (no
    store, never cached): the codes are never kept in clear, not even in the session, so
    no later request could hand them out again."""
    made = timezone.now().strftime("%Y-%m-%d %H:%M %Z")
    text = "\n".join(
        [
            f"Token Portal ({request.get_host()}): recovery codes of {request.user.get_username()}",
            f"Made {made}. Each code logs you in once; new codes replace all of these.",
            "",
            *codes,
            "",
        ]
    )
    context = {
        "codes": codes,
        "next": next_url,
        "enrolled": enrolled,
        "download_url": "data:text/plain;charset=utf-8," + quote(text),
        "download_name": RECOVERY_CODES_FILENAME,
    }
    return render(request, "accounts/recovery_codes.html", context)


@method_decorator(never_cache, name="dispatch")
class AccountSecurityView(LoginRequiredMixin, View):
    """Two-factor status, and the way to new recovery codes."""

    template_name = "accounts/security.html"

    def get(self, request):
        user = request.user
        return render(
            request,
            self.template_name,
            {
                "device": mfa.confirmed_totp_device(user),
                "remaining": mfa.remaining_recovery_codes(user),
                "required": mfa.mfa_required(user),
            },
        )

    def post(self, request):
        # New codes are asked for on their own page, confirmed there (a form of an older
        # version of this page lands on that confirmation too).
        return redirect("recovery-codes", permanent=False)


@method_decorator(never_cache, name="dispatch")
class RecoveryCodesView(LoginRequiredMixin, View):
    """New recovery codes for a verified session: confirm first (the old codes stop
    working), then shown once."""

    template_name = "accounts/recovery_codes_confirm.html"

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and not mfa.has_second_factor(user):
            messages.info(request, "Set up two-factor authentication first.")
            return redirect("account-security")
        if user.is_authenticated and not user.is_verified():
            messages.error(request, "Verify with your authenticator app first.")
            return redirect_to_login(request.path, reverse("mfa-verify"))
        return super().dispatch(request, *args, **kwargs)

    def get(self, request):
        remaining = mfa.remaining_recovery_codes(request.user)
        return render(request, self.template_name, {"remaining": remaining})

    def post(self, request):
        user = request.user
        codes = mfa.new_recovery_codes(user)
        security_log("authn_mfa_recovery_codes_renewed", actor=user)
        return _recovery_codes_page(
            request, codes, next_url=reverse("account-security"), enrolled=False
        )


class LogoutView(auth_views.LogoutView):
    """Django's logout (POST only), which then says so on the login page."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.success(request, "You have been logged out.")
        return response
