"""Malformed requests of every kind get a standard OAuth error or a 4xx, never a 500."""

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import make_token
from tests.oauth_helpers import FORM, basic, make_client

ENDPOINTS = ["/oauth/token/", "/oauth/revoke/", "/oauth/introspect/"]


@pytest.fixture
def caller(db):
    app, secret = make_client(can_introspect=True)
    _, token = make_token(app=app)
    return app, secret, token


def _body(endpoint, token):
    return "grant_type=client_credentials" if endpoint.endswith("token/") else f"token={token}"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "case",
    [
        "invalid utf-8 in percent-encoding",
        "raw non-ascii bytes",
        "bad percent escapes",
        "json body",
        "multipart body",
        "no content type",
        "repeated parameter",
        "repeated client_id",
        "query string",
        "huge body",
        "invalid content length",
        "nul in a value",
        "nul in the client id",
        "too many fields",
        "bad base64 basic",
        "basic without colon",
        "basic with invalid utf-8",
        "basic with an empty client id",
        "basic with a huge client id",
        "empty body",
    ],
)
def test_malformed_requests_get_a_4xx_json_error(client, caller, endpoint, case):
    app, secret, token = caller
    body = _body(endpoint, token)
    content_type = FORM
    auth = basic(app.client_id, secret)
    extra = {}
    path = endpoint
    match case:
        case "invalid utf-8 in percent-encoding":
            body += "&token_type_hint=%ff%fe"
        case "raw non-ascii bytes":
            body = body.encode() + "&scope=ä".encode("latin-1")
        case "bad percent escapes":
            body += "&scope=%zz%"
        case "json body":
            body, content_type = '{"token": "x"}', "application/json"
        case "multipart body":
            body, content_type = "--b\r\n\r\n--b--", "multipart/form-data; boundary=b"
        case "no content type":
            content_type = ""
        case "repeated parameter":
            body = body + "&" + body
        case "repeated client_id":
            body += f"&client_id={app.client_id}&client_id={app.client_id}"
            auth = None
        case "query string":
            path += "?a=1"
        case "huge body":
            body += "&pad=" + "x" * 3_000_000
        case "invalid content length":
            extra["CONTENT_LENGTH"] = "ten"
        case "nul in a value":
            body += "&scope=a%00b&token_type_hint=a%00b"
        case "nul in the client id":
            auth = basic(app.client_id + "\x00", secret)
        case "too many fields":
            body += "".join(f"&f{i}=1" for i in range(100))
        case "bad base64 basic":
            auth = "Basic !!!not-base64!!!"
        case "basic without colon":
            auth = "Basic " + base64.b64encode(b"no-colon-here").decode()
        case "basic with invalid utf-8":
            auth = "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode()
        case "basic with an empty client id":
            auth = "Basic " + base64.b64encode(f":{secret}".encode()).decode()
        case "basic with a huge client id":
            auth = basic("c" * 5000, secret)
        case "empty body":
            body = ""
    if auth:
        extra["HTTP_AUTHORIZATION"] = auth

    response = client.post(path, data=body, content_type=content_type, **extra)

    assert 400 <= response.status_code < 500, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] in {
        "invalid_request",
        "invalid_client",
        "unsupported_grant_type",
    }
    assert secret not in response.content.decode()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options"])
def test_wrong_methods_get_405(client, endpoint, method):
    response = getattr(client, method)(endpoint)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"] == "invalid_request"


def test_a_secret_in_the_query_string_never_reaches_the_response(client, caller):
    app, secret, token = caller

    response = client.post(
        f"/oauth/token/?client_id={app.client_id}&client_secret={secret}",
        data="grant_type=client_credentials",
        content_type=FORM,
    )

    assert response.status_code == 400
    assert secret not in response.content.decode()


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, "/gateway/auth"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=300),
    authorization=st.one_of(st.none(), st.text(max_size=80)),
    content_type=st.sampled_from([FORM, FORM + "; charset=utf-8", "text/plain", ""]),
)
def test_fuzzed_requests_never_get_a_500(
    client, caller, endpoint, body, authorization, content_type
):
    extra = {"HTTP_X_ORIGINAL_URI": body.decode("latin-1")}
    if authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization

    response = client.post(endpoint, data=body, content_type=content_type, **extra)

    assert response.status_code < 500
