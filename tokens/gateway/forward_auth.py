"""Forward-auth (``/gateway/auth``): nginx ``auth_request``, Traefik ForwardAuth, Envoy
ext_authz (HTTP). The answer for a request's ``Authorization`` and original URI."""

import functools
import logging
import time
from typing import NamedTuple
from urllib.parse import quote

from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from portal.logs import security_log
from tokens import crypto
from tokens.gateway import cache
from tokens.gateway.catalogue import match_api
from tokens.gateway.check import check_active
from tokens.gateway.info import REALM, TokenInfo
from tokens.gateway.paths import normalise_path, original_uri

logger = logging.getLogger(__name__)


_scope_refusals_logged: dict[str, float] = {}


def _log_scope_refusal(info: TokenInfo, path: str) -> None:
    """``authz_fail`` for a token refused an API, at most once a minute per token and process.

    A gateway asks on every API request: a client calling an API its token lacks would
    otherwise write a log line per request, and a log flood hides the events that matter.
    """
    tick = time.monotonic()
    if _scope_refusals_logged.get(info.public_id, 0.0) > tick:
        return
    if len(_scope_refusals_logged) > 10_000:
        _scope_refusals_logged.clear()
    _scope_refusals_logged[info.public_id] = tick + 60
    security_log("authz_fail", level=logging.WARNING, token=info.public_id, path=path, status=403)


# --- forward-auth ------------------------------------------------------------------

# What header values may hold as they are; everything else is percent-encoded (UTF-8),
# so owners with non-ASCII letters or line breaks can never break a response.
_HEADER_SAFE = " !\"#$&'()*+,-./:;<=>?@[]^_`{|}~"


@functools.lru_cache(maxsize=4096)
def header_value(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


class Answer(NamedTuple):
    """A forward-auth answer: its status and headers (it never has a body)."""

    status: int
    headers: tuple[tuple[str, str], ...]


def _challenge(status: int, error: str | None = None) -> Answer:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return Answer(status, (("WWW-Authenticate", challenge), ("Cache-Control", "no-store")))


_UNAVAILABLE = Answer(503, (("Retry-After", "1"), ("Cache-Control", "no-store")))


def bearer_secret(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def forward_auth_answer(authorization: str | None, original_uri: str | None, path: str) -> Answer:
    """The forward-auth answer for a request's ``Authorization`` and original URI.

    The one implementation behind ``forward_auth`` (Django's stack) and the WSGI fast
    path (``tokens.fastpath``); ``path`` is the endpoint's own path, for the log.
    """
    secret = bearer_secret(authorization)
    if secret is None:
        return _challenge(401)
    if not crypto.looks_like_token(secret):
        return _challenge(401, "invalid_token")
    digest = crypto.digest(secret)
    token_key = cache.token_cache_key(digest)
    version_key = cache.CATALOGUE_VERSION_KEY
    cached = cache.read_many([token_key, version_key])
    try:
        active = check_active(digest, cached=cached.get(token_key), version=cached.get(version_key))
    except DatabaseError:
        logger.exception("Gateway check failed: database unavailable")
        return _UNAVAILABLE
    if active is None:
        return _challenge(401, "invalid_token")
    info, known = active
    grant = known.grant(info, match_api(normalise_path(original_uri), known.index))
    if grant is None:
        # Sampled: a client calling an API its token lacks asks on every request.
        _log_scope_refusal(info, path)
        return _challenge(403, "insufficient_scope")

    app = known.apps[info.app_id]
    headers = [
        ("Cache-Control", "no-store"),
        ("X-Token-Id", info.public_id),
        ("X-Token-Client-Id", app.client_id),
        ("X-Token-App", header_value(app.name)),
        ("X-Token-Owner", header_value(info.owner)),
        ("X-Token-Api", header_value(grant.name)),
        ("X-Token-Api-Version", header_value(grant.version)),
        ("X-Token-Plan", header_value(grant.plan)),
    ]
    if grant.rate_limit is not None:
        headers.append(("X-Token-Rate-Limit", str(grant.rate_limit)))
    return Answer(200, tuple(headers))


@csrf_exempt
def forward_auth(request) -> HttpResponse:
    """nginx ``auth_request``, Traefik ForwardAuth, Envoy ext_authz (HTTP); any method."""
    answer = forward_auth_answer(
        request.META.get("HTTP_AUTHORIZATION"), original_uri(request.META), request.path
    )
    response = HttpResponse(status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    if answer.status == 403:
        # PortalSecurityMiddleware logs every other 403; this one is sampled.
        response.authz_logged = True
    return response
