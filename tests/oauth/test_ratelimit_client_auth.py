"""Rate limits of the OAuth endpoints by whom they must stop, and whom never.

Failed client authentications are limited per client address and per client_id, a
correct authentication never uses that budget, and introspection is metered per client,
not per address: a gateway fleet behind one address is not throttled by its own load.
"""

import collections

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.factories import make_token
from tests.oauth_helpers import make_client, post_form
from tokens import crypto, ratelimit

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


@pytest.fixture
def active_token(db) -> str:
    return make_token()[1]


def introspect(client, auth, secret="tpk_unknown", address="10.0.0.1"):
    return post_form(client, INTROSPECT_URL, {"token": secret}, auth=auth, REMOTE_ADDR=address)


def assert_refused(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 3600  # at most a window (a minute or an hour)
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


def test_failures_naming_one_client_from_many_addresses_are_refused(client, limits, gateway):
    """Once the client's budget is used up its wrong secrets are answered 429, whatever the
    address, and counted no further against the client."""
    app, _ = gateway
    statuses = [
        introspect(client, (app.client_id, f"tpcs_guess{n}"), address=f"10.1.0.{n}").status_code
        for n in range(BUDGET)
    ]

    assert statuses == [401] * BUDGET
    assert_refused(introspect(client, (app.client_id, "tpcs_guess"), address="10.1.0.99"))
    assert cache.get(ratelimit.window("client_auth", f"client:{app.client_id}").key) == BUDGET


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
    """Nor is a new instance of it (an address of its own, an instance idle for an hour, every
    instance after Redis lost its state): the client's budget refuses wrong secrets only."""
    limits(client_auth=f"{BUDGET}/h")
    app, secret = gateway
    _, token = make_token()
    assert introspect(client, (app.client_id, secret), token).status_code == 200
    attack = [  # an attacker, from addresses of its own
        introspect(client, (app.client_id, "tpcs_wrong"), address=f"10.2.0.{n}").status_code
        for n in range(BUDGET + 2)
    ]
    ratelimit._known.clear()  # as another process, which has seen none of it

    answers = [
        introspect(client, (app.client_id, secret), token, address=address)
        for address in ("10.0.0.1", "10.2.0.200", "10.2.0.200")  # the last: a known pair
    ]
    wrong = introspect(client, (app.client_id, "tpcs_wrong"), address="10.2.0.201")

    assert attack == [401] * BUDGET + [429] * 2
    assert [(a.status_code, a.json()["active"]) for a in answers] == [(200, True)] * 3
    assert_refused(wrong)
    client_window = ratelimit.window("client_auth", f"client:{app.client_id}")
    assert cache.get(client_window.key) == BUDGET  # counted no further against the client
    assert cache.get(ratelimit.window("client_auth", "address:10.2.0.201").key) == 1
    cache.clear()  # Redis loses its state: no pair is known anywhere
    ratelimit.forget()
    for n in range(BUDGET):
        introspect(client, (app.client_id, "tpcs_wrong"), address=f"10.2.1.{n}")
    assert introspect(client, (app.client_id, secret), token).status_code == 200


def test_only_the_address_budget_refuses_before_the_secret_is_checked(
    client, limits, gateway, monkeypatch
):
    """An address that fails is the attacker's: refused unchecked. A client whose name
    others fail in is checked: its right secret is answered."""
    limits(client_auth=f"{BUDGET}/h")
    app, secret = gateway
    _, token = make_token()
    for n in range(BUDGET):  # the client's budget, from many addresses
        introspect(client, (app.client_id, "tpcs_wrong"), address=f"10.7.0.{n}")
    for n in range(BUDGET):  # the address's budget, naming clients that do not exist
        introspect(client, (f"tpc_guess{n}", "tpcs_wrong"), address="10.7.1.1")
    checked = []
    real = crypto.digests_match
    monkeypatch.setattr(crypto, "digests_match", lambda *a: checked.append(1) or real(*a))

    from_new_address = introspect(client, (app.client_id, secret), token, address="10.7.2.1")
    assert from_new_address.status_code == 200 and checked
    checked.clear()
    assert_refused(introspect(client, (app.client_id, secret), token, address="10.7.1.1"))
    assert not checked


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

    windows = ratelimit._failure_windows("10.0.0.1", app.client_id)
    keys = [current.key for current in windows.values()]

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
                    lock = ratelimit.lock(who, "tpc_client")
                    assert lock is None or not lock.unchecked
            total = sum(failures.values())
            assert (ratelimit.lock("10.3.0.9", "tpc_stranger") is not None) == (total >= BUDGET)
            if total >= BUDGET:  # a client's budget alone never refuses unchecked
                assert not ratelimit.lock("10.3.0.9", "tpc_stranger").unchecked
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


@pytest.mark.parametrize("attacker", ["10.0.0.1", "10.5.0.1"], ids=["same-address", "elsewhere"])
def test_failed_authentications_never_use_a_clients_introspection_budget(
    client, limits, gateway, attacker
):
    """Only a client that authenticated is metered: requests naming a gateway with a wrong
    secret, from its own address (a NAT neighbour) or another, leave its budget whole."""
    limits(introspect="50/h", client_auth=f"{BUDGET}/h")
    app, secret = gateway
    _, token = make_token()
    first = introspect(client, (app.client_id, secret), token)
    attack = [
        introspect(client, (app.client_id, "tpcs_wrong"), token, address=attacker).status_code
        for _ in range(60)
    ]

    assert first.status_code == 200
    assert set(attack) == {401, 429}
    answers = [introspect(client, (app.client_id, secret), token) for _ in range(48)]
    ratelimit._known.clear()  # as another process: the full path, counted the same
    answers.append(introspect(client, (app.client_id, secret), token))
    assert [(a.status_code, a.json()["active"]) for a in answers] == [(200, True)] * 49
    assert_refused(introspect(client, (app.client_id, secret), token))  # its 51st


def test_introspection_is_counted_without_a_round_trip_of_its_own(
    client, limits, gateway, monkeypatch
):
    """Counted after the client authenticated, a full batch is added to the shared counter
    in the next request's round trip (which reads the client and the token anyway)."""
    limits(introspect="1000/h")  # batches of 10
    app, secret = gateway
    _, token = make_token()
    assert introspect(client, (app.client_id, secret), token).status_code == 200  # full path
    counted = []
    monkeypatch.setattr(ratelimit.cache, "count", lambda *a: counted.append(a))
    statuses = [introspect(client, (app.client_id, secret), token).status_code for _ in range(24)]

    assert statuses == [200] * 24
    assert counted == []
    assert cache.get(ratelimit.window("introspect", app.client_id).key) == 20


GATEWAY_ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
EVENTS = st.one_of(
    st.tuples(st.just("gateway"), st.sampled_from(GATEWAY_ADDRESSES)),
    st.tuples(st.just("attack"), st.sampled_from(["10.0.0.1", "10.8.0.1", "10.8.0.2"])),
    st.tuples(st.just("attack-elsewhere"), st.integers(0, 255)),
    st.just(("new process", "")),
    st.just(("cache lost", "")),
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(EVENTS, max_size=25))
def test_a_busy_authenticated_gateway_is_never_refused(gateway, active_token, events):
    """Whatever others do in its name: failing from any address (its own NAT address
    included), while instances start (new addresses, new processes) and the cache loses
    its state. Its budget is exactly its own load. The one refusal: an instance new to an
    address that itself failed its budget (docs/gateway.md, "Rate limits")."""
    from django.test import Client

    cache.clear()
    ratelimit.forget()
    app, secret = gateway
    token = active_token
    load = 1 + sum(kind == "gateway" for kind, _ in events)
    portal = django_settings.TOKEN_PORTAL
    limit = {**portal["RATE_LIMITS"], "client_auth": f"{BUDGET}/h", "introspect": f"{load}/h"}
    client = Client()
    memo, marks, failures = set(), set(), collections.Counter()  # as the portal keeps them

    def answered(address: str) -> int:
        status = introspect(client, (app.client_id, secret), token, address).status_code
        if status == 200 and address not in memo:
            memo.add(address)
            marks.add(address)
        return status

    with override_settings(TOKEN_PORTAL={**portal, "RATE_LIMITS": limit}):
        assert answered("10.0.0.1") == 200
        for kind, where in events:
            if kind == "gateway":
                locked = failures[where] >= BUDGET and where not in memo | marks
                assert answered(where) == (429 if locked else 200)
            elif kind.startswith("attack"):
                address = where if kind == "attack" else f"10.9.0.{where}"
                wrong = introspect(client, (app.client_id, "tpcs_wrong"), address=address)
                assert wrong.status_code in (401, 429)
                failures[address] += 1
            elif kind == "new process":
                ratelimit.forget()
                memo.clear()
            else:
                cache.clear()
                marks.clear()
                failures.clear()
