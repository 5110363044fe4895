"""The WSGI entry of the gateway's per-request endpoints: Django's views, less Django's handler.

Gateways call ``/gateway/auth`` (forward-auth) and ``/oauth/introspect/`` (RFC 7662) on
every API request. Through Django's ``WSGIHandler`` each of them pays for work it never
uses: the request-started and request-finished signals (on PostgreSQL with health
checks on, one extra ``SELECT 1`` round trip per request that queries), the URL
resolver, and every middleware of the site. ``GatewayFastPath`` wraps the Django
application and answers these paths itself:

- with **the same code**: forward-auth's answer is ``tokens.gateway.check.forward_auth_answer``
  (the view ``forward_auth`` wraps the same function in an ``HttpResponse``), and
  introspection's is ``tokens.oauth.views.handle``, which the view calls too, here given
  a lean stand-in for the request (``_LeanRequest``: method, META, content type, body);
- with **the same middleware effects** as the full stack's outer middleware (the part
  of ``settings.MIDDLEWARE`` before ``GatewayFastPathMiddleware``: the portal's security
  middleware and Django's ``SecurityMiddleware``): the same client address and log
  context (``begin_request``), the same ``authz_fail`` log for a 403
  (``log_forbidden``), and the headers that this very middleware adds, learnt once per
  scheme by running it on a probe response (CSP, HSTS, nosniff, …). A request that the
  stack would redirect to HTTPS goes to Django, which redirects it;
- and it keeps the database connection healthy the way the signals would: a connection
  that saw an error or outlived ``CONN_MAX_AGE`` is checked and closed after the request,
  and one idle for over ``IDLE_SECONDS`` is health-checked before its next query.

Every other path goes to Django untouched. Under the test client (which has no WSGI
entry) and ASGI, ``GatewayFastPathMiddleware`` routes the same paths to the same views.
"""

import io
import logging
import re
import time
from http import HTTPStatus

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.db import connections
from django.http import HttpResponse
from django.utils.http import parse_header_parameters
from django.utils.module_loading import import_string

from portal.logs import request_context
from portal.middleware import begin_request, log_forbidden
from tokens.gateway.forward_auth import forward_auth, forward_auth_answer
from tokens.gateway.paths import original_uri
from tokens.oauth.views import INTROSPECT, RawAnswer, handle, introspect

logger = logging.getLogger(__name__)

FAST_PATH_MIDDLEWARE = "tokens.fastpath.GatewayFastPathMiddleware"


def outer_middleware() -> list[str]:
    """The middleware that runs before the fast path in the full stack, outermost first."""
    names = list(settings.MIDDLEWARE)
    if FAST_PATH_MIDDLEWARE not in names:
        return names
    return names[: names.index(FAST_PATH_MIDDLEWARE)]


# A connection idle longer than this gets Django's health check before its next query:
# a server restart, a failover or an idle timeout (a load balancer's, PostgreSQL's
# idle_session_timeout) must not cost a check its answer.
IDLE_SECONDS = 5.0


def _open_connections() -> list:
    """``connections.all(initialized_only=True)``, with one thread-local lookup per alias
    instead of three (this runs twice per check)."""
    local = connections._connections
    return [
        connection
        for alias in connections.settings
        if (connection := getattr(local, alias, None)) is not None
    ]


def _check_idle_connections(now: float) -> None:
    for connection in _open_connections():
        if connection.connection is None or connection.in_atomic_block:
            continue
        if now - getattr(connection, "_fastpath_used_at", now) > IDLE_SECONDS:
            connection.health_check_done = False  # checked at its next use, as Django does


def _release_connections() -> None:
    """What ``close_old_connections`` does after a request, without a health check each time.

    Django's signal handler marks every connection for a health check (one round trip
    before its next query) after every request. Here only a connection with a reason
    to doubt it is checked and closed if need be: it saw an error, it has outlived
    ``CONN_MAX_AGE``, or (at the next request) it has been idle for ``IDLE_SECONDS``.
    A connection inside an atomic block belongs to a transaction that encloses the
    request (a test's: the views here never leave one open) and is left alone, as
    Django's test client leaves it.
    """
    now = time.monotonic()
    for connection in _open_connections():
        if connection.connection is None or connection.in_atomic_block:
            continue
        connection._fastpath_used_at = now
        if connection.errors_occurred or (
            connection.close_at is not None and now >= connection.close_at
        ):
            connection.close_if_unusable_or_obsolete()


def _chain(view):
    """``view`` behind the outer middleware, as Django's handler would build it."""
    handler = convert_exception_to_response(view)
    for name in reversed(outer_middleware()):
        handler = convert_exception_to_response(import_string(name)(handler))
    return handler


def script_name(environ: dict) -> str:
    """Django's ``get_script_name`` (the path prefix the app is mounted at), at once
    when nothing sets one, as under gunicorn started without ``SCRIPT_NAME``."""
    if (
        settings.FORCE_SCRIPT_NAME is None
        and not environ.get("SCRIPT_NAME")
        and not environ.get("SCRIPT_URL")
        and not environ.get("REDIRECT_URL")
    ):
        return ""
    return get_script_name(environ)


def is_secure(environ: dict) -> bool:
    """``HttpRequest.is_secure()`` of this request, without building the request."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def _redirects_to_https(path: str, secure: bool) -> bool:
    """Whether Django's ``SecurityMiddleware`` would redirect a request for ``path``
    (``request.path``: script name and path info) to HTTPS."""
    if secure or not settings.SECURE_SSL_REDIRECT:
        return False
    exempt = [re.compile(pattern) for pattern in settings.SECURE_REDIRECT_EXEMPT]
    return not any(pattern.search(path.lstrip("/")) for pattern in exempt)


def middleware_headers(path: str, secure: bool) -> tuple[tuple[str, str], ...]:
    """The headers the outer middleware gives a bodiless, no-store answer at ``path``.

    Learnt by running that middleware on a probe request and response, so the fast
    path's answers carry exactly what the full stack's would (CSP, HSTS, nosniff, …).
    """
    probe = HttpResponse(status=200)
    probe["Cache-Control"] = "no-store"
    own = {name.lower() for name in probe.headers}
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if secure else "80",
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": io.BytesIO(),
    }
    response = _chain(lambda request: probe)(WSGIRequest(environ))
    added = tuple((name, value) for name, value in response.items() if name.lower() not in own)
    return (("Content-Type", probe["Content-Type"]), *added)


_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class _LeanRequest:
    """What ``tokens.oauth.views.handle`` reads of a request, straight from the environ."""

    __slots__ = ("META", "method", "path", "content_type", "_body")

    def __init__(self, environ: dict, path: str):
        self.META = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = path
        self.content_type = parse_header_parameters(environ.get("CONTENT_TYPE", ""))[0]
        self._body = None

    @property
    def body(self) -> bytes:
        # Read only once handle() has checked CONTENT_LENGTH against its limit.
        if self._body is None:
            try:
                length = int(self.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            self._body = self.META["wsgi.input"].read(length) if length > 0 else b""
        return self._body


class GatewayFastPath:
    """WSGI middleware: answers the gateway's endpoints before Django's handler."""

    def __init__(self, application):
        self.application = application
        self.forward_auth_paths = {"/gateway/auth", "/gateway/auth/"}
        self.introspect_paths = {"/oauth/introspect/"}
        self.paths = (*self.forward_auth_paths, *self.introspect_paths)
        self._headers: dict[bool, tuple] = {}
        self._merges: dict[tuple, tuple] = {}

    def __call__(self, environ, start_response):
        answer = self.complete_answer(environ)
        if answer is None:
            return self.application(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body]

    def takes(self, raw_path: str) -> bool:
        """Whether a request for ``raw_path`` (as sent, script name included) is likely
        one that ``complete_answer`` takes: a cheap first look for a server with its own
        way of writing those answers (``portal.serving.worker.SyncWorker``). Only a hint:
        a percent-encoded spelling of these paths is answered by ``__call__`` instead."""
        return raw_path.endswith(self.paths)

    def complete_answer(self, environ) -> tuple[str, list, bytes] | None:
        """The whole answer to a gateway check, as ``(status line, headers, body)``;
        None when the request is for Django (another path, a redirect to HTTPS)."""
        path = environ.get("PATH_INFO", "")
        if path in self.forward_auth_paths:
            _check_idle_connections(time.monotonic())
            return self.forward_auth(environ, path)
        if path in self.introspect_paths:
            _check_idle_connections(time.monotonic())
            return self.introspect(environ, path)
        return None

    def _middleware_headers(self, path: str, secure: bool) -> tuple | None:
        """The outer middleware's headers here; None if it would redirect to HTTPS.

        They depend on the scheme alone (the path only decides the redirect), so at
        most two sets are kept, whatever script names clients send.
        """
        if _redirects_to_https(path, secure):
            return None
        if secure not in self._headers:
            self._headers[secure] = middleware_headers(path, secure)
        return self._headers[secure]

    def forward_auth(self, environ, path):
        full_path = script_name(environ) + path  # Django's request.path
        extra = self._middleware_headers(full_path, is_secure(environ))
        if extra is None:  # the full stack answers with its redirect to HTTPS
            return None
        reset = begin_request(environ)
        try:
            answer = forward_auth_answer(
                environ.get("HTTP_AUTHORIZATION"), original_uri(environ), full_path
            )
            status, headers = answer.status, [*answer.headers, *extra]
        except Exception:
            logger.exception("Gateway check failed")
            status, headers = 500, [("Cache-Control", "no-store"), *extra]
        finally:
            request_context.reset(reset)
            _release_connections()
        headers.append(("Content-Length", "0"))
        return _STATUS_LINES[status], headers, b""

    def introspect(self, environ, path):
        full_path = script_name(environ) + path  # Django's request.path
        extra = self._middleware_headers(full_path, is_secure(environ))
        if extra is None:  # the full stack answers with its redirect to HTTPS
            return None
        request = _LeanRequest(environ, full_path)
        reset = begin_request(environ)
        try:
            response = handle(request, INTROSPECT, raw=True)
            if isinstance(response, RawAnswer):
                status, body, headers = response.status, response.body, [*response.headers]
            else:
                log_forbidden(response, request.method, full_path)
                status, body = response.status_code, response.content
                headers = list(response.items())
        except Exception:
            logger.exception("Introspection failed")
            status, body, headers = 500, b"", [("Cache-Control", "no-store")]
        finally:
            request_context.reset(reset)
            _release_connections()
        headers = [*self._merged(tuple(headers), extra), ("Content-Length", str(len(body)))]
        return _STATUS_LINES[status], headers, body

    def _merged(self, headers: tuple, extra: tuple) -> tuple:
        """``headers``, then those of ``extra`` (the middleware's) that they do not set:
        worked out once per set of headers (introspection's everyday answer has one)."""
        merged = self._merges.get((headers, extra))
        if merged is None:
            present = {name.lower() for name, _ in headers}
            merged = (*headers, *(header for header in extra if header[0].lower() not in present))
            if len(self._merges) < 64:  # error answers vary (Retry-After …): not all kept
                self._merges[(headers, extra)] = merged
        return merged


class GatewayFastPathMiddleware:
    """Answers the gateway's per-request endpoints before the rest of the stack.

    Placed right after SecurityMiddleware: these endpoints need no session, user,
    CSRF token, messages, template or URLconf, and gateways call them on every API
    request. The URLconf routes the same paths to the same views, so behaviour does
    not depend on this middleware being installed.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.routes = {
            "/gateway/auth": forward_auth,
            "/gateway/auth/": forward_auth,
            "/oauth/introspect/": introspect,
        }

    def __call__(self, request):
        view = self.routes.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
