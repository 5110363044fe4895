"""oauthlib's request validator over our own models: App is the client, AccessToken the token.

There is no second token table: the token endpoint issues tokens through the same
service as the portal, revocation revokes through it, introspection answers with the
gateway's cached check.
"""

import base64
import binascii
import time
from typing import NamedTuple
from urllib.parse import unquote_plus

from oauthlib.oauth2 import RequestValidator
from oauthlib.oauth2.rfc6749 import errors

from tokens import crypto, services
from tokens.conf import setting
from tokens.gateway import cache
from tokens.gateway import check as gateway
from tokens.gateway.catalogue import Catalogue
from tokens.gateway.info import TokenInfo
from tokens.models import App

# Set by the views on the oauthlib request's headers; never taken from the client.
REMOTE_ADDR_HEADER = "X-Portal-Remote-Addr"
_MAX_CLIENT_ID_LENGTH = App._meta.get_field("client_id").max_length
_MAX_SECRET_LENGTH = 200


class IntrospectionNotAllowed(errors.OAuth2Error):
    error = "unauthorized_client"
    status_code = 403
    description = "This client is not allowed to introspect tokens."


class ClientInfo(NamedTuple):
    """What introspection needs of its caller (cached: it is asked on every API request)."""

    pk: int
    client_id: str
    name: str
    secret_digest: str
    can_introspect: bool
    is_active: bool


def decode_basic(credentials: str) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: base64 of form-urlencoded ``client_id:client_secret``."""
    try:
        raw = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    client_id, colon, secret = raw.partition(":")
    if not colon:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def client_credentials(request) -> tuple[str, str] | None:
    """The (client_id, client_secret) the client authenticates with, if any.

    A client may use HTTP Basic or the form fields, never both (RFC 6749 §2.3).
    """
    basic = None
    scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "basic":
        basic = decode_basic(value.strip())
        if basic is None:
            return None
    if basic is not None:
        if request.client_secret is not None or request.client_id not in (None, basic[0]):
            raise errors.InvalidRequestError(
                description="Use one client authentication method, not two.", request=request
            )
        credentials = basic
    elif request.client_id and request.client_secret:
        credentials = (request.client_id, request.client_secret)
    else:
        return None
    client_id, secret = credentials
    if (
        not client_id
        or len(client_id) > _MAX_CLIENT_ID_LENGTH
        or len(secret) > _MAX_SECRET_LENGTH
        or "\x00" in client_id + secret
    ):
        return None
    return credentials


def _remote_addr(request) -> str | None:
    return request.headers.get(REMOTE_ADDR_HEADER) or None


class PortalRequestValidator(RequestValidator):
    """Client credentials grant and RFC 7009 revocation over App and AccessToken."""

    def client_authentication_required(self, request, *args, **kwargs):
        return True

    def authenticate_client(self, request, *args, **kwargs):
        credentials = client_credentials(request)
        if credentials is None:
            return False
        client_id, secret = credentials
        app = App.objects.filter(client_id=client_id, is_active=True).first()
        if app is None or not app.check_client_secret(secret):
            return False
        request.client = app
        request.client_id = app.client_id
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        return False  # no public clients

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        return grant_type == "client_credentials"

    def _subscribed_base_paths(self, request) -> list[str]:
        if not hasattr(request, "subscribed_base_paths"):
            request.subscribed_base_paths = list(
                request.client.subscription_set.values_list("api__base_path", flat=True)
            )
        return request.subscribed_base_paths

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        # Scopes are API base paths; by default a token carries all the app subscribes to.
        return self._subscribed_base_paths(request)

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        return set(scopes) <= set(self._subscribed_base_paths(request))

    def issue_token(self, request) -> str:
        """oauthlib's token generator: issue the token through the service, return its secret.

        The service generates, stores (as a digest) and audits the token in one step,
        so ``save_bearer_token`` has nothing left to do.
        """
        issued = services.token_issue_for_client(
            app=request.client,
            base_paths=request.scopes,
            remote_addr=_remote_addr(request),
        )
        return issued.secret

    def token_lifetime(self, request) -> int:
        return setting("OAUTH_TOKEN_LIFETIME")

    def save_bearer_token(self, token, request, *args, **kwargs):
        pass  # saved by issue_token

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        # Looked up by digest whatever the hint says (RFC 7009 §2.1: a wrong hint is ignored).
        services.token_revoke_by_client(
            client=request.client, secret=token, remote_addr=_remote_addr(request)
        )


class IntrospectionRequestValidator(PortalRequestValidator):
    """RFC 7662: only apps allowed to introspect; the caller's credentials are cached."""

    def authenticate_client(self, request, *args, **kwargs):
        credentials = client_credentials(request)
        if credentials is None:
            return False
        client = self.authenticated_client(*credentials)
        if client is None:
            return False
        if not client.can_introspect:
            raise IntrospectionNotAllowed(request=request)
        request.client = client
        request.client_id = client.client_id
        return True

    def authenticated_client(self, client_id: str, secret: str, *, cached=None):
        """The active client ``client_id`` if ``secret`` is its secret, else None.

        ``cached`` is what the cache already answered for the client, if it was read.
        """
        client = self._client(client_id, cached=cached)
        if (
            client is None
            or not client.is_active
            or not crypto.digests_match(secret, client.secret_digest)
        ):
            return None
        return client

    def _client(self, client_id: str, *, cached=None) -> ClientInfo | None:
        key = cache.client_cache_key(client_id)
        if cached is None:
            cached = cache.read(key)
        if isinstance(cached, ClientInfo):
            return cached
        started = time.monotonic()
        row = (
            App.objects.filter(client_id=client_id)
            .values_list(
                "pk", "client_id", "name", "client_secret_digest", "can_introspect", "is_active"
            )
            .first()
        )
        if row is None:
            return None
        client = ClientInfo(*row)
        if cached is None:
            cache.populate(key, client, setting("CLIENT_CACHE_SECONDS"), started=started)
        return client

    def introspect_token(self, token, token_type_hint, request, *args, **kwargs):
        if not crypto.looks_like_token(token):
            return None
        return claims(gateway.check_active(crypto.digest(token)))


def claims(active: "tuple[TokenInfo, Catalogue] | None") -> dict | None:
    """RFC 7662 claims of an active token (without ``active``); None for an inactive one."""
    if active is None:
        return None
    info, known = active
    result = {
        "client_id": known.apps[info.app_id].client_id,
        "token_type": "Bearer",
        "iat": info.issued_at,
        "sub": info.owner,
        "apis": [
            {
                "name": grant.name,
                "version": grant.version,
                "base_path": grant.base_path,
                "plan": grant.plan,
            }
            for grant in known.grants(info)
        ],
    }
    if info.expires_at is not None:
        result["exp"] = int(info.expires_at)
    return result
