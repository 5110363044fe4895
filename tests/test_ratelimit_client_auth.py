"""Rate limits of the OAuth endpoints by whom they must stop, and whom never.

Failed client authentications are limited per client address and per client_id, a
correct authentication never uses that budget, and introspection is metered per client,
not per address: a gateway fleet behind one address is not throttled by its own load.
"""

from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.factories import make_token
from tests.oauth_helpers import make_client, post_form
from tokens import ratelimit

TOKEN_URL = "/oauth/token/"
REVOKE_URL = "/oauth/revoke/"
INTROSPECT_URL = "/oauth/introspect/"
BUDGET = 3


@pytest.fixture(autouse=True)
def _plain_http_on_loopback(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture(autouse=True)
def _fresh_memos():
    ratelimit._known.clear()
    yield
    ratelimit._known.clear()


@pytest.fixture
def limits(settings):
    def set_limits(**limits: str) -> None:
        settings.TOKEN_PORTAL = {
            **settings.TOKEN_PORTAL,
            "RATE_LIMITS": {**settings.TOKEN_PORTAL["RATE_LIMITS"], **limits},
        }

    set_limits(client_auth=f"{BUDGET}/m")
    return set_limits


@pytest.fixture
def gateway(db):
    return make_client(can_introspect=True, name="Gateway")


def introspect(client, auth, secret="tpk_unknown", address="10.0.0.1"):
    return post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth, REMOTE_ADDR=address)


def assert_refused(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"] == "temporarily_unavailable"


# --- Failed authentications: per address, per client ---------------------------------


BODIES = {
    TOKEN_URL: {"grant_type": "client_credentials"},
    REVOKE_URL: {"token": "tpk_x"},
    INTROSPECT_URL: {"token": "tpk_x"},
}


@pytest.mark.parametrize("url", list(BODIES))
def test_failed_authentications_are_limited_per_address(client, limits, db, url):
    """Unknown client_ids, a new one each time: only the address's budget can stop them."""

    def attempt(client_id, address="10.0.0.7"):
        auth = (client_id, "tpcs_wrong")
        return post_form(client, url, BODIES[url], auth=auth, REMOTE_ADDR=address)

    statuses = [attempt(f"tpc_guess{n}").status_code for n in range(BUDGET)]

    assert statuses == [401] * BUDGET
    assert_refused(attempt("tpc_guess9"))
    assert attempt("tpc_guess9", "10.0.0.8").status_code == 401  # a budget of its own


def test_missing_credentials_count_against_the_address(client, limits, db):
    statuses = [
        post_form(client, INTROSPECT_URL, {"token": "x"}, REMOTE_ADDR="10.0.0.9").status_code
        for _ in range(BUDGET)
    ]

    assert statuses == [401] * BUDGET
    assert_refused(post_form(client, INTROSPECT_URL, {"token": "x"}, REMOTE_ADDR="10.0.0.9"))


def test_guessing_one_clients_secret_from_many_addresses_is_stopped(client, limits, gateway):
    app, secret = gateway
    statuses = [
        introspect(client, (app.client_id, f"tpcs_guess{n}"), address=f"10.1.0.{n}").status_code
        for n in range(BUDGET)
    ]

    assert statuses == [401] * BUDGET
    assert_refused(introspect(client, (app.client_id, "tpcs_guess"), address="10.1.0.99"))
    # Refused before the secret is checked: the right one from a new address learns nothing.
    assert_refused(introspect(client, (app.client_id, secret), address="10.1.0.100"))


def test_correct_authentications_never_use_the_failure_budget(client, limits, gateway):
    app, secret = gateway
    _, token = make_token()
    answers = [introspect(client, (app.client_id, secret), token) for _ in range(4 * BUDGET)]
    issuer, issuer_secret = make_client()
    issued = [
        post_form(
            client,
            TOKEN_URL,
            {"grant_type": "client_credentials"},
            auth=(issuer.client_id, issuer_secret),
            REMOTE_ADDR="10.0.0.1",
        ).status_code
        for _ in range(BUDGET + 1)
    ]
    failures = [
        introspect(client, (app.client_id, "tpcs_wrong")).status_code for _ in range(BUDGET)
    ]

    assert [answer.json()["active"] for answer in answers] == [True] * (4 * BUDGET)
    assert issued == [200] * (BUDGET + 1)
    assert failures == [401] * BUDGET  # the whole budget was left
    assert_refused(introspect(client, (app.client_id, "tpcs_wrong")))


def test_a_working_gateway_is_not_locked_out_by_failures_in_its_name(client, limits, gateway):
    app, secret = gateway
    _, token = make_token()
    assert introspect(client, (app.client_id, secret), token).status_code == 200
    for n in range(BUDGET + 2):  # an attacker, from addresses of its own
        introspect(client, (app.client_id, "tpcs_wrong"), address=f"10.2.0.{n}")
    ratelimit._known.clear()  # as another process, which has seen none of it

    answer = introspect(client, (app.client_id, secret), token)

    assert answer.status_code == 200 and answer.json()["active"] is True
    assert_refused(introspect(client, (app.client_id, secret), token, address="10.2.0.200"))


def test_an_address_over_its_budget_is_refused_even_a_correct_secret(client, limits, gateway):
    """...unless that client has authenticated correctly from that address before."""
    app, secret = gateway
    known, known_secret = make_client(can_introspect=True)
    _, token = make_token()
    assert introspect(client, (known.client_id, known_secret), token).status_code == 200
    for n in range(BUDGET):
        introspect(client, (f"tpc_guess{n}", "tpcs_wrong"))

    assert_refused(introspect(client, (app.client_id, secret), token))
    assert introspect(client, (known.client_id, known_secret), token).status_code == 200


def test_a_refused_request_is_not_counted_as_a_failure(client, limits, gateway):
    app, _ = gateway
    for _ in range(BUDGET + 5):
        introspect(client, (app.client_id, "tpcs_wrong"))

    keys = [current.key for current in ratelimit._failure_windows("10.0.0.1", app.client_id)]

    assert list(cache.get_many(keys).values()) == [BUDGET, BUDGET]


def test_a_cache_outage_lets_authentication_through(client, limits, gateway, monkeypatch):
    app, secret = gateway
    _, token = make_token()

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(ratelimit.django_cache, "get_many", down)
    monkeypatch.setattr(ratelimit.cache, "count", down)
    failures = [
        introspect(client, (app.client_id, "tpcs_wrong")).status_code for _ in range(BUDGET + 2)
    ]

    assert failures == [401] * (BUDGET + 2)


@hypothesis_settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["10.3.0.1", "10.3.0.2"]), st.booleans()),
        max_size=3 * BUDGET,
    )
)
def test_only_failures_count_whatever_the_order(attempts):
    """Per address and per client the failures are counted exactly, successes never; and
    a pair that succeeded stays let in."""
    cache.clear()
    ratelimit._known.clear()
    portal = django_settings.TOKEN_PORTAL
    limit = {**portal["RATE_LIMITS"], "client_auth": f"{BUDGET}/h"}
    with override_settings(TOKEN_PORTAL={**portal, "RATE_LIMITS": limit}):
        failures = {"10.3.0.1": 0, "10.3.0.2": 0}
        known = set()
        for address, correct in attempts:
            if correct:
                ratelimit.record_success(address, "tpc_client")
                known.add(address)
            else:
                ratelimit.record_failure(address, "tpc_stranger")
                failures[address] += 1
            for who, count in failures.items():
                assert (ratelimit.lock(who, None) is not None) == (count >= BUDGET)
                if who in known:  # a known pair is never refused before its check
                    assert ratelimit.lock(who, "tpc_client") in (None, (mock.ANY, True))
            total = sum(failures.values())
            assert (ratelimit.lock("10.3.0.9", "tpc_stranger") is not None) == (total >= BUDGET)
            assert ratelimit.lock("10.3.0.9", "tpc_client") is None


# --- Introspection: metered per client, not per address -------------------------------


def test_introspection_is_metered_per_client_not_per_address(client, limits, db):
    """Three gateways behind one address, each within its own budget of 5: none refused
    (per address, 15 requests against one budget of 5 were 10 refusals)."""
    limits(introspect="5/h")
    _, token = make_token()
    gateways = [make_client(can_introspect=True) for _ in range(3)]

    statuses = [
        introspect(client, (app.client_id, secret), token).status_code
        for app, secret in gateways
        for _ in range(5)
    ]

    assert statuses == [200] * 15


def test_one_client_over_its_introspection_budget_is_refused_alone(client, limits, db):
    limits(introspect="5/h")
    _, token = make_token()
    (busy, busy_secret), (other, other_secret) = [
        make_client(can_introspect=True) for _ in range(2)
    ]
    statuses = [
        introspect(client, (busy.client_id, busy_secret), token, address=f"10.4.0.{n}").status_code
        for n in range(5)
    ]

    assert statuses == [200] * 5
    refused = introspect(client, (busy.client_id, busy_secret), token, address="10.4.0.99")
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert introspect(client, (other.client_id, other_secret), token).status_code == 200
