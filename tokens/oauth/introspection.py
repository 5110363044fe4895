"""RFC 7662's everyday request (a well-formed token and the credentials of a client
allowed to introspect), answered without oauthlib's machinery, from the same cached
client record and the same check as forward-auth (bench/RESULTS.md measures why)."""

import json
from typing import NamedTuple

from django.db import DatabaseError

from tokens import crypto, ratelimit
from tokens.gateway import cache
from tokens.gateway import check as gateway
from tokens.oauth.validator import IntrospectionRequestValidator, claims

INTROSPECT_VALIDATOR = IntrospectionRequestValidator()


class EverydayAnswer(NamedTuple):
    wait: int | None  # over the client's rate limit: seconds, for Retry-After
    body: bytes | None  # else the JSON answer


def everyday_answer(
    params: dict[str, str], credentials: tuple[str, str], remote_addr: str
) -> EverydayAnswer | None:
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
    window = ratelimit.window("introspect", client_id)
    due = 0 if window is None else ratelimit.due(window)
    counter = (window.key, window.period + 1, due) if due else None
    counted, cached = cache.count_and_read(counter, keys)
    if due and counted is None:  # the cache is down: the batch waits for the next one
        ratelimit.untake(window, due)
    elif due:
        ratelimit.estimate(window, counted)  # the shared count, as now seen
    try:
        client = INTROSPECT_VALIDATOR.authenticated_client(
            client_id, client_secret, cached=cached.get(client_key)
        )
        if client is None or not client.can_introspect:
            return None
        ratelimit.record_success(remote_addr, client_id)
        if window is not None:
            wait = window.retry_after(ratelimit.add(window))
            if wait is not None:
                return EverydayAnswer(wait, None)
        info = None
        if digest is not None:
            info = gateway.check_active(
                digest,
                cached=cached.get(token_key),
                version=cached.get(cache.CATALOGUE_VERSION_KEY),
            )
    except DatabaseError:
        return None  # oauthlib's path answers (503 if the database stays down)
    return EverydayAnswer(None, _INACTIVE_BODY if info is None else _active_body(digest, info))


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
