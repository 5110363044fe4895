"""What the OAuth endpoints read of a request, strictly: a form body only (no query
string: no secret in a URL), bounded, ASCII, no repeated parameter; the client's claimed
credentials; and the standard error JSON for whatever is refused."""

import re
from urllib.parse import parse_qsl

from django.http import JsonResponse
from oauthlib.oauth2 import OAuth2Error

from tokens.oauth.validator import client_credentials

MAX_BODY_BYTES = 8192
_MAX_FIELDS = 20
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


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


def claimed_credentials(params: dict[str, str], authorization: str | None):
    """The (client_id, client_secret) a request authenticates with, unchecked; None when
    it has none or sends them wrongly (oauthlib then answers the error)."""
    shim = CredentialsShim(
        {"Authorization": authorization} if authorization else {},
        params.get("client_id"),
        params.get("client_secret"),
    )
    try:
        return client_credentials(shim)
    except OAuth2Error:
        return None


class CredentialsShim:
    """What ``client_credentials`` reads of an oauthlib request; any other attribute is
    None, as on oauthlib's own request (its errors read several when they are made)."""

    def __init__(self, headers: dict, client_id: str | None, client_secret: str | None):
        self.headers, self.client_id, self.client_secret = headers, client_id, client_secret

    def __getattr__(self, name):
        return None
