"""Gateways hammering introspection from one address are never throttled by their load,
while a client failing to authenticate from that same address is stopped at its budget;
and failures in a gateway's name, from many addresses, neither use up its introspection
budget nor keep its new instances out.

A real gunicorn (two workers) on PostgreSQL and Redis, behind a trusted proxy (the test
names the client address in ``X-Forwarded-For``). Introspection is limited per client
(here 400 an hour, each gateway stays below it), failed client authentications per
address and per client (here 5 an hour). Counted per address, as before, the gateways'
900 requests would have met a budget of 400.
"""

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.e2e import servers

pytestmark = pytest.mark.e2e

PG_URL = os.environ.get("TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
GATEWAYS = 3
PER_GATEWAY = 300  # each under its limit of 400; together over it
FAILURE_BUDGET = 5
THREADS = 8


def _postgresql() -> str:
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=2, autocommit=True).close()
    except psycopg.Error as error:
        servers.unavailable(f"no PostgreSQL at {PG_URL}: {error}")
    return PG_URL


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(sql)


@pytest.fixture(scope="module")
def portal():
    """A gunicorn on a fresh PostgreSQL database and one Redis (a key prefix of its own)."""
    redis_url = servers.require_redis()
    _postgresql()
    name = f"tp_e2e_load_{uuid.uuid4().hex[:8]}"
    prefix = f"tp-e2e-{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    database_url = urlsplit(PG_URL)._replace(path=f"/{name}").geturl()
    env = servers.portal_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_CACHE_PREFIX=prefix,
        TOKEN_PORTAL_RATE_LIMIT_INTROSPECT="400/h",
        TOKEN_PORTAL_RATE_LIMIT_CLIENT_AUTH_FAILURES=f"{FAILURE_BUDGET}/h",
        TOKEN_PORTAL_TRUSTED_PROXY_COUNT="1",
    )
    try:
        servers.manage("migrate", "--no-input", env=env)
        apps = {
            "payer": servers.manage(
                "create_app", "--name", "Payer", "--subscribe", "/pay:Gold", env=env
            ),
            "intruder": servers.manage("create_app", "--name", "Intruder", env=env),
            "latecomer": servers.manage(
                "create_app", "--name", "Late edge", "--can-introspect", env=env
            ),
            "fleet": servers.manage("create_app", "--name", "Fleet", "--can-introspect", env=env),
        }
        for number in range(GATEWAYS):
            apps[f"gateway{number}"] = servers.manage(
                "create_app", "--name", f"Edge {number}", "--can-introspect", env=env
            )
        import json

        apps = {key: json.loads(value) for key, value in apps.items()}
        with servers.gunicorn(env=env, workers=2) as base_url:
            yield base_url, apps
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def introspect(session, base_url, client_id, client_secret, token, address=None):
    return session.post(
        base_url + "/oauth/introspect/",
        data={"token": token},
        auth=(client_id, client_secret),
        headers={"X-Forwarded-For": address} if address else {},
        timeout=10,
    )


def _token(base_url, apps) -> str:
    payer = apps["payer"]
    with OAuth2Session(payer["client_id"], payer["client_secret"]) as session:
        return session.fetch_token(base_url + "/oauth/token/", grant_type="client_credentials")[
            "access_token"
        ]


def test_gateways_behind_one_address_are_never_refused_while_a_failing_client_is(portal):
    base_url, apps = portal
    payer = apps["payer"]
    with OAuth2Session(payer["client_id"], payer["client_secret"]) as session:
        token = session.fetch_token(base_url + "/oauth/token/", grant_type="client_credentials")[
            "access_token"
        ]
    gateways = [apps[f"gateway{number}"] for number in range(GATEWAYS)]
    # The gateways are at work before the intruder starts (a gateway that first calls
    # while its address is locked waits for the window's end: docs/gateway.md).
    with requests.Session() as session:
        for gateway in gateways:
            first = introspect(
                session, base_url, gateway["client_id"], gateway["client_secret"], token
            )
            assert first.status_code == 200

    def hammer(thread: int) -> list[int]:
        statuses = []
        with requests.Session() as session:
            for number in range(thread, GATEWAYS * PER_GATEWAY, THREADS):
                gateway = gateways[number % GATEWAYS]
                answer = introspect(
                    session, base_url, gateway["client_id"], gateway["client_secret"], token
                )
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    assert answer.json()["active"] is True
        return statuses

    def intrude() -> list[int]:
        intruder = apps["intruder"]
        with requests.Session() as session:
            return [
                introspect(
                    session, base_url, intruder["client_id"], "tpcs_wrong", token
                ).status_code
                for _ in range(FAILURE_BUDGET + 10)
            ]

    with ThreadPoolExecutor(THREADS + 1) as pool:
        intruding = pool.submit(intrude)
        hammering = [pool.submit(hammer, thread) for thread in range(THREADS)]
        statuses = [status for future in hammering for status in future.result()]
        intruder_statuses = intruding.result()

    assert len(statuses) == GATEWAYS * PER_GATEWAY
    assert statuses.count(429) == 0
    assert set(statuses) == {200}
    assert intruder_statuses == [401] * FAILURE_BUDGET + [429] * 10
    # Its address is now over the budget: a client that never authenticated from it is
    # refused before its secret is checked, the working gateways are not.
    late = apps["latecomer"]
    newcomer = introspect(requests, base_url, late["client_id"], late["client_secret"], token)
    assert newcomer.status_code == 429 and int(newcomer.headers["Retry-After"]) >= 1
    assert newcomer.json()["error"] == "temporarily_unavailable"
    for gateway in gateways:
        answer = introspect(
            requests, base_url, gateway["client_id"], gateway["client_secret"], token
        )
        assert answer.status_code == 200


def test_failures_in_a_gateways_name_neither_spend_its_budget_nor_keep_it_out(portal):
    """450 wrong secrets naming the gateway, one from each of 450 addresses (more than its
    introspection budget of 400, each address within its failure budget), across both
    workers: then three instances of it, each from an address it never used, introspect
    300 times between them, all answered."""
    base_url, apps = portal
    token = _token(base_url, apps)
    fleet = apps["fleet"]
    attackers = [f"10.20.{n // 250}.{n % 250}" for n in range(450)]

    def attack(thread: int) -> list[int]:
        with requests.Session() as session:
            return [
                introspect(
                    session, base_url, fleet["client_id"], "tpcs_wrong", token, address
                ).status_code
                for address in attackers[thread::THREADS]
            ]

    def instance(number: int) -> list[tuple[int, bool | None]]:
        address = f"10.30.0.{number}"
        with requests.Session() as session:
            answers = [
                introspect(
                    session, base_url, fleet["client_id"], fleet["client_secret"], token, address
                )
                for _ in range(100)
            ]
        return [(a.status_code, a.json().get("active")) for a in answers]

    with ThreadPoolExecutor(THREADS) as pool:
        attack_statuses = [
            s for f in [pool.submit(attack, t) for t in range(THREADS)] for s in f.result()
        ]
    with ThreadPoolExecutor(3) as pool:
        answers = [a for f in [pool.submit(instance, n) for n in range(3)] for a in f.result()]
    wrong = introspect(requests, base_url, fleet["client_id"], "tpcs_wrong", token, "10.30.1.1")

    assert set(attack_statuses) == {401, 429}
    assert attack_statuses.count(401) >= FAILURE_BUDGET  # then the client's budget is used up
    assert answers == [(200, True)] * 300
    assert wrong.status_code == 429 and int(wrong.headers["Retry-After"]) >= 1
