"""Two app servers sharing Redis: after a revoke on one, neither accepts the token."""

import json
import threading
import time
import uuid

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.e2e import servers

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal_pair(tmp_path_factory):
    """Two gunicorn servers on one SQLite file and one Redis (a key prefix of their own)."""
    redis_url = servers.require_redis()
    prefix = f"tp-e2e-{uuid.uuid4().hex[:8]}"
    database = tmp_path_factory.mktemp("shared") / "portal.sqlite3"
    env = servers.portal_env(
        DATABASE_URL=f"sqlite:///{database}",
        REDIS_URL=redis_url,
        DJANGO_CACHE_PREFIX=prefix,
        TOKEN_PORTAL_GATEWAY_CACHE_SECONDS="300",
        TOKEN_PORTAL_RATE_LIMIT_REVOKE="20/h",
    )
    servers.manage("migrate", "--no-input", env=env)
    payer = json.loads(
        servers.manage("create_app", "--name", "Payer", "--subscribe", "/pay:Gold", env=env)
    )
    gateway = json.loads(
        servers.manage("create_app", "--name", "Edge gateway", "--can-introspect", env=env)
    )
    try:
        with servers.gunicorn(env=env) as first, servers.gunicorn(env=env) as second:
            yield first, second, payer, gateway
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def gateway_check(base_url, secret):
    return requests.get(
        base_url + "/gateway/auth",
        headers={"Authorization": f"Bearer {secret}", "X-Original-URI": "/pay/x"},
        timeout=10,
    ).status_code


def introspect(base_url, gateway, secret):
    with OAuth2Session(gateway["client_id"], gateway["client_secret"]) as client:
        return client.introspect_token(base_url + "/oauth/introspect/", token=secret).json()


def issue(base_url, payer):
    with OAuth2Session(payer["client_id"], payer["client_secret"]) as client:
        return client.fetch_token(base_url + "/oauth/token/", grant_type="client_credentials")[
            "access_token"
        ]


def test_no_server_keeps_accepting_a_token_revoked_on_another(portal_pair):
    first, second, payer, gateway = portal_pair
    secret = issue(first, payer)
    # Both servers answer, and so fill the shared cache with "active".
    for base_url in (first, second):
        assert gateway_check(base_url, secret) == 200
        assert introspect(base_url, gateway, secret)["active"] is True

    # Hammer the second server while the first one revokes.
    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def hammer():
        with requests.Session() as session:
            while not stop.is_set():
                sent = time.monotonic()
                status = session.get(
                    second + "/gateway/auth",
                    headers={"Authorization": f"Bearer {secret}", "X-Original-URI": "/pay/x"},
                    timeout=10,
                ).status_code
                results.append((sent, status))

    hammering = threading.Thread(target=hammer, daemon=True)
    hammering.start()
    time.sleep(0.5)
    with OAuth2Session(payer["client_id"], payer["client_secret"]) as client:
        revoked = client.revoke_token(first + "/oauth/revoke/", token=secret)
    revoke_returned = time.monotonic()
    time.sleep(0.5)
    stop.set()
    hammering.join(timeout=15)

    assert revoked.status_code == 200
    before = [status for sent, status in results if sent < revoke_returned]
    after = [status for sent, status in results if sent > revoke_returned]
    assert before and set(before) <= {200, 401}
    assert after and set(after) == {401}, "a server accepted the token after the revoke"
    for base_url in (first, second):
        assert gateway_check(base_url, secret) == 401
        assert introspect(base_url, gateway, secret) == {"active": False}


def test_rate_limits_are_counted_across_servers(portal_pair):
    first, second, payer, _ = portal_pair
    statuses = []
    for attempt in range(40):  # the limit is 20 per hour per address, across servers
        base_url = (first, second)[attempt % 2]
        statuses.append(
            requests.post(
                base_url + "/oauth/revoke/",
                data={"token": "tpk_unknown"},
                auth=(payer["client_id"], payer["client_secret"]),
                timeout=10,
            ).status_code
        )

    assert statuses.count(200) <= 20
    assert statuses.count(429) >= 20
    assert set(statuses) <= {200, 429}
