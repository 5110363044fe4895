"""Response hardening for every answer: CSP, no-store, framing, and the security log context.

``PortalSecurityMiddleware`` is the outermost middleware, so it also wraps the gateway's
fast path and whitenoise. On the way in it takes the client address from a trusted
proxy's ``X-Forwarded-For`` (only as many hops as ``TRUSTED_PROXY_COUNT`` says) and
opens the security-log context; on the way out it adds ``Cache-Control: no-store`` on
everything that is not a static file, the other hardening headers, and logs
``authz_fail`` for every 403 (forward-auth's own 403s, one per API request, are logged by
the gateway at most once a minute per token instead).

The Content-Security-Policy is django-csp's (``ContentSecurityPolicyMiddleware``, the
directives in ``settings.CONTENT_SECURITY_POLICY``). It allows no inline script or style.
Django admin's change list has one inline ``<style>`` block (for changelists without
actions); it is allowed by its SHA-256 hash, read from Django's own template, so the
policy stays free of ``'unsafe-inline'``.
"""

import base64
import contextvars
import functools
import hashlib
import ipaddress
import logging
import re

from csp.constants import HEADER
from csp.middleware import CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings
from django.utils.cache import patch_cache_control
from django.utils.functional import empty

from portal.logs import request_context, security_log

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)


@functools.cache
def admin_inline_style_hashes() -> tuple[str, ...]:
    """CSP hashes of the inline ``<style>`` blocks in Django admin's own templates."""
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    hashes = []
    for name in ("admin/change_list.html",):
        try:
            source = get_template(name).template.source
        except (TemplateDoesNotExist, AttributeError):
            continue
        for block in re.findall(r"<style>(.*?)</style>", source, flags=re.S):
            digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
            hashes.append(f"'sha256-{digest}'")
    return tuple(hashes)


def _with_admin_styles(update: dict | None) -> dict:
    """``update`` (a policy's additions) with admin's inline style hashes in ``style-src``."""
    update = dict(update or {})
    styles = update.get("style-src") or ()
    styles = (styles,) if isinstance(styles, str) else tuple(styles)
    update["style-src"] = (*styles, *admin_inline_style_hashes())
    return update


def content_security_policy() -> str:
    """The policy of an answer that asks for no other: ``settings.CONTENT_SECURITY_POLICY``
    with admin's inline style hashes."""
    return _in_declared_order(build_policy(update=_with_admin_styles(None)))


def _in_declared_order(policy: str) -> str:
    """``policy`` with its directives in the order ``settings.CONTENT_SECURITY_POLICY``
    declares them. django-csp 4.0 writes them in the order of a set of strings, which
    differs from one process to the next (string hashing is randomised per process);
    every server must send the same bytes."""
    declared = tuple(getattr(settings, "CONTENT_SECURITY_POLICY", {}).get("DIRECTIVES", ()))
    return _ordered(policy, declared)


@functools.lru_cache(maxsize=16)
def _ordered(policy: str, declared: tuple[str, ...]) -> str:
    rank = {name: index for index, name in enumerate(declared)}

    def place(directive: str) -> tuple[int, str]:
        return rank.get(directive.split(" ", 1)[0], len(rank)), directive

    return "; ".join(sorted(policy.split("; "), key=place))


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware (``settings.CONTENT_SECURITY_POLICY``), adding the hashes of
    Django admin's inline styles to ``style-src``, its directives in their declared order.
    It sits in the outer middleware, before the gateway's fast path, so that the fast
    path's answers carry the policy too (learnt once per scheme, not built per answer)."""

    def get_policy_parts(self, request, response, report_only=False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only:
            parts.update = _with_admin_styles(parts.update)
        return parts

    def process_response(self, request, response):
        written = HEADER in response
        response = super().process_response(request, response)
        if not written and HEADER in response:
            response[HEADER] = _in_declared_order(response[HEADER])
        return response


def client_address(meta: dict, trusted_proxies: int) -> str:
    """The client's address: ``REMOTE_ADDR``, or, behind ``trusted_proxies`` proxies, the
    address the outermost trusted proxy saw (the Nth entry from the right of
    ``X-Forwarded-For``). Entries further left are the client's to forge, so never read.
    """
    remote = meta.get("REMOTE_ADDR", "")
    if trusted_proxies <= 0:
        return remote
    hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    if len(hops) < trusted_proxies:
        return remote
    candidate = hops[-trusted_proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def remote_addr(request) -> str | None:
    """The client's address as the portal records it (logs, audit, rate limits): the
    request's ``REMOTE_ADDR``, which ``begin_request`` took from a trusted proxy; None
    when unknown (or without a request)."""
    return getattr(request, "META", {}).get("REMOTE_ADDR") or None


def begin_request(meta: dict, actor=None) -> contextvars.Token:
    """Take the client address from a trusted proxy and open the security-log context.

    Rewrites ``meta["REMOTE_ADDR"]`` behind ``TRUSTED_PROXY_COUNT`` proxies. The caller
    resets ``request_context`` with the returned token when the request ends.
    """
    proxies = settings.TOKEN_PORTAL.get("TRUSTED_PROXY_COUNT", 0)
    if proxies:
        meta["REMOTE_ADDR"] = client_address(meta, proxies)
    supplied_id = meta.get("HTTP_X_REQUEST_ID", "")
    # None: made when a security event first needs it (most requests log none).
    request_id = supplied_id if supplied_id and _REQUEST_ID_RE.match(supplied_id) else None
    return request_context.set(
        {
            "remote_addr": meta.get("REMOTE_ADDR") or None,
            "request_id": request_id,
            "actor": actor,
        }
    )


def log_forbidden(response, method: str, path: str) -> None:
    """``authz_fail`` for a 403 answer, unless its view logged it (sampled) already."""
    if response.status_code == 403 and not getattr(response, "authz_logged", False):
        security_log("authz_fail", level=logging.WARNING, method=method, path=path, status=403)


def _is_static(path: str) -> bool:
    static_url = "/" + settings.STATIC_URL.lstrip("/")
    return path.startswith(static_url) or path == "/favicon.ico"


class PortalSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        reset = begin_request(request.META, actor=lambda: _username(request))
        try:
            response = self.get_response(request)
            log_forbidden(response, request.method, request.path)
        finally:
            request_context.reset(reset)
        self.harden(request, response)
        return response

    @staticmethod
    def harden(request, response) -> None:
        if _is_static(request.path_info):
            return
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        # Token pages, secrets shown once, API answers: nothing dynamic is ever cached.
        control = response.get("Cache-Control", "")
        if "no-store" not in control:
            if control:
                patch_cache_control(response, no_store=True)
            else:
                response["Cache-Control"] = "no-store"


def _username(request) -> str | None:
    user = getattr(request, "user", None)
    # Never evaluate a lazy user here: that would query the session on API requests.
    wrapped = getattr(user, "_wrapped", user)
    if wrapped is None or wrapped is empty:
        return None
    if getattr(wrapped, "is_authenticated", False):
        return wrapped.get_username()
    return None
