"""A real nginx with auth_request in front of a dummy upstream, asking the live portal."""

import re

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.e2e import servers
from tests.factories import PlanFactory, UserFactory, make_token
from tests.oauth_helpers import make_client
from tokens.models import TokenOrigin, TokenStatus

pytestmark = pytest.mark.e2e

# The nginx snippet of docs/gateway.md, with ports filled in.
NGINX_HTTP = """
server {{
    listen 127.0.0.1:{upstream_port};
    location / {{
        default_type text/plain;
        return 200 "upstream saw owner=$http_x_token_owner plan=$http_x_token_plan\\n";
    }}
}}
server {{
    listen 127.0.0.1:{gateway_port};
    location / {{
        auth_request /_token_check;
        auth_request_set $token_owner $upstream_http_x_token_owner;
        auth_request_set $token_plan $upstream_http_x_token_plan;
        proxy_set_header X-Token-Owner $token_owner;
        proxy_set_header X-Token-Plan $token_plan;
        proxy_set_header Authorization "";
        proxy_pass http://127.0.0.1:{upstream_port};
    }}
    {check_location}
}}
"""


@pytest.fixture
def gateway_url(live_server):
    port = servers.free_port()
    config = NGINX_HTTP.format(
        upstream_port=servers.free_port(),
        gateway_port=port,
        check_location=servers.token_check_location(live_server.url.rsplit(":", 1)[1]),
    )
    with servers.nginx(config, port=port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def pay_plan(transactional_db):
    return PlanFactory(name="Gold", api__base_path="/pay")


def call(gateway_url, secret, path="/pay/charges"):
    return requests.get(
        gateway_url + path, headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )


def portal_confirm_revoke(live_server, token, user):
    """The portal's REVOKE → CONFIRM, over HTTP as a logged-in Portal administrator."""
    with requests.Session() as browser:
        login = browser.get(live_server.url + "/accounts/login/", timeout=10)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        browser.post(
            live_server.url + "/accounts/login/",
            data={
                "csrfmiddlewaretoken": csrf,
                "username": user.username,
                "password": "correct horse battery staple",
            },
            headers={"Referer": live_server.url + "/accounts/login/"},
            timeout=10,
        ).raise_for_status()
        revoke_url = f"{live_server.url}/tokens/{token.public_id}/revoke/"
        page = browser.get(revoke_url, timeout=10)
        assert "HTTP 401 (Unauthorized)" in page.text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return browser.post(
            revoke_url,
            data={"csrfmiddlewaretoken": csrf, "reason": "leaked in a ticket"},
            headers={"Referer": revoke_url},
            timeout=10,
        )


def test_portal_revoke_turns_the_gateway_answer_to_401_at_once(live_server, gateway_url, pay_plan):
    token, secret = make_token(plans=[pay_plan], owner="Zoë")
    admin = UserFactory(username="admin-e2e", groups=["Portal administrators"])

    passed = call(gateway_url, secret)
    assert passed.status_code == 200
    assert passed.text == "upstream saw owner=Zo%C3%AB plan=Gold\n"
    assert call(gateway_url, secret, "/other").status_code == 403
    assert call(gateway_url, "tpk_nonsense").status_code == 401
    missing = requests.get(gateway_url + "/pay", timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="token-portal"'

    confirmed = portal_confirm_revoke(live_server, token, admin)

    assert confirmed.status_code == 200
    token.refresh_from_db()
    assert token.status == TokenStatus.REVOKED
    refused = call(gateway_url, secret)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_rfc7009_revoke_turns_the_gateway_answer_to_401_at_once(live_server, gateway_url, pay_plan):
    app, app_secret = make_client(plans=[pay_plan])
    with OAuth2Session(app.client_id, app_secret) as client:
        issued = client.fetch_token(
            live_server.url + "/oauth/token/", grant_type="client_credentials"
        )
        secret = issued["access_token"]
        for _ in range(3):
            assert call(gateway_url, secret).status_code == 200

        revoked = client.revoke_token(live_server.url + "/oauth/revoke/", token=secret)

    assert revoked.status_code == 200
    assert call(gateway_url, secret).status_code == 401


def test_expired_and_oauth_tokens_behave_at_the_gateway(live_server, gateway_url, pay_plan):
    _, expired = make_token(plans=[pay_plan], expired=True)
    _, oauth = make_token(plans=[pay_plan], origin=TokenOrigin.OAUTH)

    assert call(gateway_url, expired).status_code == 401
    assert call(gateway_url, oauth).status_code == 200
    assert call(gateway_url, oauth, "/pay/../admin").status_code == 403
