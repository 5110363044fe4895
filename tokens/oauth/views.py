"""The OAuth endpoints: thin Django views around oauthlib's server endpoints.

The views own what oauthlib leaves to the framework: POST only, a form body only
(no query string, so no secret in a URL), bounded size, strict decoding, no repeated
parameter, rate limits; and they answer every refusal with the standard error JSON,
never a 500.
"""

import logging
from collections.abc import Callable
from typing import NamedTuple

from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from oauthlib.oauth2 import (
    BearerToken,
    ClientCredentialsGrant,
    IntrospectEndpoint,
    RevocationEndpoint,
    TokenEndpoint,
)

from tokens import ratelimit
from tokens.gateway.cache import CachePurgeFailed
from tokens.gateway.info import REALM
from tokens.oauth.introspection import INTROSPECT_VALIDATOR, everyday_answer
from tokens.oauth.params import (
    BadRequest,
    claimed_credentials,
    error_response,
    form_params,
)
from tokens.oauth.validator import (
    REMOTE_ADDR_HEADER,
    PortalRequestValidator,
)

logger = logging.getLogger(__name__)
_CLIENT_PARAMS = frozenset({"client_id", "client_secret"})


def _drop_empty_scope(token: dict) -> dict:
    # An app without subscriptions gets a token without APIs; "scope": "" says nothing.
    if token.get("scope") == "":
        del token["scope"]
    return token


_validator = PortalRequestValidator()
_client_credentials = ClientCredentialsGrant(_validator)
_client_credentials.register_token_modifier(_drop_empty_scope)
_token_endpoint = TokenEndpoint(
    default_grant_type="client_credentials",
    grant_types={"client_credentials": _client_credentials},
    default_token_type=BearerToken(
        _validator, token_generator=_validator.issue_token, expires_in=_validator.token_lifetime
    ),
)
# Both hint values are "supported": RFC 7009 says a wrong hint must not change the answer.
_revocation_endpoint = RevocationEndpoint(_validator)
_introspect_endpoint = IntrospectEndpoint(INTROSPECT_VALIDATOR)


class Endpoint(NamedTuple):
    name: str  # also its rate-limit scope
    uri: str
    params: frozenset[str]  # what it reads; RFC 6749 §3.2: others are ignored
    respond: Callable


TOKEN = Endpoint(
    "token",
    "https://token-portal/oauth/token/",
    _CLIENT_PARAMS | {"grant_type", "scope"},
    _token_endpoint.create_token_response,
)
REVOKE = Endpoint(
    "revoke",
    "https://token-portal/oauth/revoke/",
    _CLIENT_PARAMS | {"token", "token_type_hint"},
    _revocation_endpoint.create_revocation_response,
)
INTROSPECT = Endpoint(
    "introspect",
    "https://token-portal/oauth/introspect/",
    _CLIENT_PARAMS | {"token", "token_type_hint"},
    _introspect_endpoint.create_introspect_response,
)


def _oauthlib_response(headers: dict, body: str, status: int) -> HttpResponse:
    response = HttpResponse(body, status=status)
    if body:
        response["Content-Type"] = "application/json"
    else:
        del response["Content-Type"]
    for name, value in headers.items():
        if name.lower() != "content-type":
            response[name] = value
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    if status == 401:
        # RFC 6749 §5.2: the challenge names the scheme clients authenticate with.
        response["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return response


def _rate_limited(wait: int) -> HttpResponse:
    description = f"Too many requests; retry in {wait} s."
    response = error_response(429, "temporarily_unavailable", description)
    response["Retry-After"] = str(wait)
    return response


class RawAnswer(NamedTuple):
    """Introspection's everyday answer before any response object is made (fast path)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


# What _oauthlib_response gives a 200 JSON answer.
INTROSPECTION_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
)


def handle(request, endpoint: Endpoint, *, raw: bool = False) -> HttpResponse | RawAnswer:
    """One OAuth endpoint's answer. ``request`` needs only ``method``, ``META``,
    ``content_type`` and ``body`` (``tokens.fastpath`` passes a lean stand-in, and
    ``raw=True`` to have introspection's everyday answer as a ``RawAnswer``).

    Every POST to the token and revocation endpoints is counted once against the
    endpoint's rate limit per client address, before anything else is answered. An
    introspection is counted against its client's limit once the client has
    authenticated, never before: requests naming a client they cannot authenticate as
    do not use its budget (the everyday one's count goes to the cache with a later
    request's round trip, ``everyday_answer``). A request whose address is over its
    budget of failed client authentications is refused before its credentials are
    checked, unless its pair (client, address) is known; one whose client is over its
    budget is checked, and refused only if wrong (``ratelimit.lock``). A failed
    authentication (a 401) is counted against both budgets, or those not yet used up.
    """
    if request.method != "POST":
        response = error_response(405, "invalid_request", "Only POST is allowed.")
        response["Allow"] = "POST"
        return response
    remote_addr = request.META.get("REMOTE_ADDR", "")
    authorization = request.META.get("HTTP_AUTHORIZATION")
    try:
        params, bad = form_params(request, endpoint.params), None
    except BadRequest as error:
        params, bad = None, error
    credentials = None if params is None else claimed_credentials(params, authorization)
    client_id = credentials[0] if credentials is not None else None
    everyday = None
    if endpoint is INTROSPECT:
        if credentials is not None:
            everyday = everyday_answer(params, credentials, remote_addr)
    elif (wait := ratelimit.retry_after(endpoint.name, remote_addr)) is not None:
        return _rate_limited(wait)
    if bad is not None:
        return error_response(bad.status, "invalid_request", bad.description)
    if everyday is not None:
        if everyday.wait is not None:
            return _rate_limited(everyday.wait)
        if raw:
            return RawAnswer(200, INTROSPECTION_HEADERS, everyday.body)
        return _oauthlib_response({"Content-Type": "application/json"}, everyday.body.decode(), 200)
    lock = ratelimit.lock(remote_addr, client_id)
    if lock is not None and lock.unchecked:
        return _rate_limited(lock.wait)
    headers = {REMOTE_ADDR_HEADER: remote_addr}
    if authorization:
        headers["Authorization"] = authorization
    try:
        response = _oauthlib_response(*endpoint.respond(endpoint.uri, "POST", params, headers))
    except CachePurgeFailed:
        # The revoke is committed, but gateways may still accept the token from the
        # cache until it lapses: the client must hear of it, and a retry purges again.
        response = error_response(
            503, "temporarily_unavailable", "Revoked, but not yet everywhere; retry."
        )
        response["Retry-After"] = "1"
        return response
    except DatabaseError:
        logger.exception("OAuth %s endpoint: database unavailable", endpoint.name)
        response = error_response(503, "temporarily_unavailable", "Try again shortly.")
        response["Retry-After"] = "1"
        return response
    if response.status_code == 401:  # missing, unknown or wrong client credentials
        ratelimit.record_failure(remote_addr, client_id, lock)
        if lock is not None:  # checked over a budget: a wrong secret is refused
            return _rate_limited(lock.wait)
    elif response.status_code == 200 and client_id:
        ratelimit.record_success(remote_addr, client_id)
        if endpoint is INTROSPECT:
            # Metered per client once it authenticated: a gateway fleet behind one
            # address is one busy client, and no one else can use up its budget.
            window = ratelimit.window(endpoint.name, client_id)
            wait = window and window.retry_after(ratelimit.add(window, now=True))
            if wait is not None:
                return _rate_limited(wait)
    return response


@csrf_exempt
def token(request):
    """RFC 6749 §4.4: client credentials grant."""
    return handle(request, TOKEN)


@csrf_exempt
def revoke(request):
    """RFC 7009 token revocation by the client the token was issued to."""
    return handle(request, REVOKE)


@csrf_exempt
def introspect(request):
    """RFC 7662 token introspection, for apps allowed to introspect (gateways)."""
    return handle(request, INTROSPECT)
