"""A real nginx routes each API to its own upstream, both behind auth_request: a token for
/pay reaches /pay only, whatever shape the client gives the path.

nginx picks the location from the path as it resolves it (``..;`` is an ordinary segment
to nginx); the check must answer for that location, or refuse. The requests go out over
raw sockets: HTTP client libraries resolve dot segments themselves.
"""

import socket

import pytest

from tests.e2e import servers
from tests.factories import PlanFactory, make_token

pytestmark = pytest.mark.e2e

# Two upstreams that say who got the request; the gateway as docs/gateway.md sets it up.
NGINX_HTTP = """
server {{
    listen 127.0.0.1:{admin_port};
    location / {{ default_type text/plain; return 200 "admin saw $request_uri\\n"; }}
}}
server {{
    listen 127.0.0.1:{pay_port};
    location / {{ default_type text/plain; return 200 "pay saw $request_uri\\n"; }}
}}
server {{
    listen 127.0.0.1:{gateway_port};
    location /admin/ {{
        auth_request /_token_check;
        proxy_pass http://127.0.0.1:{admin_port};
    }}
    location /pay/ {{
        auth_request /_token_check;
        proxy_pass http://127.0.0.1:{pay_port};
    }}
    {check_location}
}}
"""


@pytest.fixture
def gateway(live_server, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "TRUSTED_URI_HEADER": "X-Original-URI"}
    port = servers.free_port()
    config = NGINX_HTTP.format(
        admin_port=servers.free_port(),
        pay_port=servers.free_port(),
        gateway_port=port,
        check_location=servers.token_check_location(live_server.url.rsplit(":", 1)[1]),
    )
    with servers.nginx(config, port=port):
        yield port


@pytest.fixture
def pay_secret(transactional_db):
    pay = PlanFactory(name="Gold", api__name="Payments", api__base_path="/pay")
    PlanFactory(name="Staff", api__name="Admin", api__base_path="/admin")
    return make_token(plans=[pay])[1]


def get(port: int, target: str, secret: str, *headers: str) -> tuple[int, str]:
    """``GET target`` exactly as written; the status and the body."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {secret}"]
    lines += [*headers, "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode("latin-1")


def test_the_token_reaches_its_own_api(gateway, pay_secret):
    assert get(gateway, "/pay/x", pay_secret) == (200, "pay saw /pay/x\n")
    assert get(gateway, "/pay//x/./y", pay_secret) == (200, "pay saw /pay//x/./y\n")
    assert get(gateway, "/admin/x", pay_secret)[0] == 403


@pytest.mark.parametrize(
    "target",
    [
        "/admin/users/..;/..;/pay/x",  # nginx: the /admin location
        "/admin/users/%2e%2e;/%2e%2e;/pay/x",
        "/admin/..;jsessionid=0A1B/pay/x",
        "/pay/../admin/x",
        "/pay/%2e%2e/admin/x",
        "/admin/%2e%2e/pay/x",  # nginx: /pay; refused all the same (encoded dots)
    ],
)
def test_a_path_that_climbs_out_of_an_api_is_refused(gateway, pay_secret, target):
    status, body = get(gateway, target, pay_secret)

    assert status == 403
    assert "saw" not in body  # no upstream was asked


def test_the_client_cannot_choose_the_uri_checked(gateway, pay_secret):
    for header in ("X-Original-URI: /pay/x", "X-Forwarded-Uri: /pay/x"):
        status, body = get(gateway, "/admin/x", pay_secret, header)
        assert status == 403, header
        assert "saw" not in body
