"""The OAuth endpoints: thin Django views around oauthlib's server endpoints.

The views own what oauthlib leaves to the framework: POST only, a form body only
(no query string, so no secret in a URL), bounded size, strict decoding, no repeated
parameter, rate limits; and they answer every refusal with the standard error JSON,
never a 500.
"""

import json
import logging
import re
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qsl

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from oauthlib.oauth2 import (
    BearerToken,
    ClientCredentialsGrant,
    IntrospectEndpoint,
    OAuth2Error,
    RevocationEndpoint,
    TokenEndpoint,
)

from tokens import crypto, ratelimit
from tokens.gateway import cache
from tokens.gateway import check as gateway
from tokens.gateway.cache import CachePurgeFailed
from tokens.gateway.info import REALM
from tokens.oauth.validator import (
    REMOTE_ADDR_HEADER,
    IntrospectionRequestValidator,
    PortalRequestValidator,
    claims,
    client_credentials,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8192
_MAX_FIELDS = 20
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
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
_introspect_validator = IntrospectionRequestValidator()
_introspect_endpoint = IntrospectEndpoint(_introspect_validator)


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


class BadRequest(Exception):
    def __init__(self, description: str, status: int = 400):
        super().__init__(description)
        self.description = description
        self.status = status


def error_response(status: int, error: str, description: str) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def form_pairs(text: str) -> list[tuple[str, str]]:
    """The fields of a form-urlencoded ASCII body; ValueError if malformed or too many.

    A body with nothing to decode (the everyday ``token=tpk_…``) is split as
    ``parse_qsl`` would split it, without its per-field decoding.
    """
    if "%" not in text and "+" not in text:
        fields = text.split("&") if text else []
        if len(fields) > _MAX_FIELDS:
            raise ValueError("Too many fields.")
        return [(name, value) for name, _, value in (f.partition("=") for f in fields if f)]
    return parse_qsl(
        text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=_MAX_FIELDS
    )


def form_params(request, wanted: frozenset[str]) -> dict[str, str]:
    """The request's form fields that ``wanted`` names; BadRequest for a malformed request."""
    if request.META.get("QUERY_STRING"):
        raise BadRequest("URL query parameters are not allowed; send them in the body.")
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest("The body must be application/x-www-form-urlencoded.")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("Invalid Content-Length.") from None
    if length > MAX_BODY_BYTES:
        raise BadRequest(f"The body exceeds {MAX_BODY_BYTES} bytes.", status=413)
    try:
        text = request.body.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("The body must be form-urlencoded ASCII.") from None
    if "%" in text and _BAD_ESCAPE.search(text):
        raise BadRequest("The body holds an invalid percent-encoding.")
    try:
        pairs = form_pairs(text)
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest("The body is not valid form-urlencoded UTF-8.") from None
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1} & wanted)
    if repeated:
        raise BadRequest(f"Repeated parameter: {', '.join(repeated)}.")
    params = {name: value for name, value in pairs if name in wanted}
    if any("\x00" in value for value in params.values()):
        raise BadRequest("Parameters must not contain NUL characters.")
    return params


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
    request's round trip, ``_introspect_lean``). A request whose address is over its
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
    credentials = None if params is None else _claimed_credentials(params, authorization)
    client_id = credentials[0] if credentials is not None else None
    lean = None
    if endpoint is INTROSPECT:
        if credentials is not None:
            lean = _introspect_lean(params, credentials, remote_addr)
    elif (wait := ratelimit.retry_after(endpoint.name, remote_addr)) is not None:
        return _rate_limited(wait)
    if bad is not None:
        return error_response(bad.status, "invalid_request", bad.description)
    if lean is not None:
        if lean.wait is not None:
            return _rate_limited(lean.wait)
        if raw:
            return RawAnswer(200, INTROSPECTION_HEADERS, lean.body)
        return _oauthlib_response({"Content-Type": "application/json"}, lean.body.decode(), 200)
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


def _claimed_credentials(params: dict[str, str], authorization: str | None):
    """The (client_id, client_secret) a request authenticates with, unchecked; None when
    it has none or sends them wrongly (oauthlib then answers the error)."""
    shim = _Credentials(
        {"Authorization": authorization} if authorization else {},
        params.get("client_id"),
        params.get("client_secret"),
    )
    try:
        return client_credentials(shim)
    except OAuth2Error:
        return None


class _Credentials:
    """What ``client_credentials`` reads of an oauthlib request; any other attribute is
    None, as on oauthlib's own request (its errors read several when they are made)."""

    def __init__(self, headers: dict, client_id: str | None, client_secret: str | None):
        self.headers, self.client_id, self.client_secret = headers, client_id, client_secret

    def __getattr__(self, name):
        return None


class _Lean(NamedTuple):
    wait: int | None  # over the client's rate limit: seconds, for Retry-After
    body: bytes | None  # else the JSON answer


def _introspect_lean(
    params: dict[str, str], credentials: tuple[str, str], remote_addr: str
) -> _Lean | None:
    """RFC 7662's everyday request answered without oauthlib (None: oauthlib answers).

    Gateways introspect on every API request; oauthlib's request object and endpoint
    machinery cost about as much as the rest of the answer together (bench/RESULTS.md).
    This answers only the well-formed request of a client allowed to introspect, with
    the same checks (the validator's client authentication, cached client record) and
    the same body and headers as oauthlib's ``IntrospectEndpoint``; anything else —
    missing token, bad or missing credentials, two authentication methods, a client
    without the right — goes to oauthlib, which answers with the standard error.
    ``token_type_hint`` is ignored by both (every hint is supported).

    The request is counted against its client's rate limit once the client has
    authenticated (``ratelimit.add``); a full batch of such counts goes to the cache in
    the round trip of the next request, which reads the client and the token anyway
    (``ratelimit.due``). So a request that cannot authenticate uses up no one's budget,
    and counting costs no round trip of its own (but for limits under 200 a window,
    counted exactly: a round trip per request).
    """
    secret = params.get("token")
    if not secret:
        return None
    client_id, client_secret = credentials
    if not ratelimit.known_here(remote_addr, client_id):
        return None  # the full path checks the failure budgets first (ratelimit.lock)
    client_key = cache.client_cache_key(client_id)
    keys = [client_key]
    digest = crypto.digest(secret) if crypto.looks_like_token(secret) else None
    if digest is not None:
        token_key = cache.token_cache_key(digest)
        keys.extend((token_key, cache.CATALOGUE_VERSION_KEY))
    else:
        token_key = None
    # The client, the token and the earlier requests' counts: one round trip at most
    # (the counts go to the cache once they make a batch; the reads may be answered
    # locally). Metered per client: a gateway fleet behind one address is one client.
    window = ratelimit.window(INTROSPECT.name, client_id)
    due = 0 if window is None else ratelimit.due(window)
    counter = (window.key, window.period + 1, due) if due else None
    counted, cached = cache.count_and_read(counter, keys)
    if due and counted is None:  # the cache is down: the batch waits for the next one
        ratelimit.untake(window, due)
    elif due:
        ratelimit.estimate(window, counted)  # the shared count, as now seen
    try:
        client = _introspect_validator.authenticated_client(
            client_id, client_secret, cached=cached.get(client_key)
        )
        if client is None or not client.can_introspect:
            return None
        ratelimit.record_success(remote_addr, client_id)
        if window is not None:
            wait = window.retry_after(ratelimit.add(window))
            if wait is not None:
                return _Lean(wait, None)
        info = None
        if digest is not None:
            info = gateway.check_active(
                digest,
                cached=cached.get(token_key),
                version=cached.get(cache.CATALOGUE_VERSION_KEY),
            )
    except DatabaseError:
        return None  # oauthlib's path answers (503 if the database stays down)
    return _Lean(None, _INACTIVE_BODY if info is None else _active_body(digest, info))


_INACTIVE_BODY = json.dumps({"active": False}).encode()
# digest → (the TokenInfo and catalogue it was made from, its JSON answer): a gateway
# introspects the same tokens again and again, and the cache hands back the same TokenInfo
# object for as long as the token's entry is unchanged (a change makes a new one), as the
# process keeps one catalogue until a change of an app, plan or API.
_bodies: dict[str, tuple] = {}


def _active_body(digest: str, active) -> bytes:
    kept = _bodies.get(digest)
    if kept is not None and kept[0] is active[0] and kept[1] is active[1]:
        return kept[2]
    body = json.dumps({"active": True, **claims(active)}).encode()
    if len(_bodies) >= 10_000:
        _bodies.clear()
    _bodies[digest] = (*active, body)
    return body


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
