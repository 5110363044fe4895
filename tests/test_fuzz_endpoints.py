"""Every HTTP endpoint takes any input: never a 500, and a refused request writes nothing.

Each example runs in a savepoint that is rolled back, so examples do not see each
other's writes; "no partial write" is checked inside it, before the rollback.
"""

import base64
from contextlib import contextmanager

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from hypothesis import given
from hypothesis import strategies as st

from accounts import mfa
from tests.factories import AppFactory, PlanFactory, SubscriptionFactory, UserFactory, make_token
from tests.fuzzing import FUZZ, FUZZ_PAGES, hostile_form_data, hostile_text
from tokens.models import AccessToken, AuditAction, AuditEvent, TokenApi

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

CLIENT_SECRET = "tpcs_" + "F" * 43


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "RATE_LIMITS": {}}
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_RECOVERY_THROTTLE_FACTOR = 0


@pytest.fixture
def platform(db):
    gold = PlanFactory(name="Gold", api__base_path="/payments")
    free = PlanFactory(name="Free", api=gold.api)
    app = AppFactory(name="Acme", client_secret=CLIENT_SECRET, can_introspect=True)
    SubscriptionFactory(app=app, plan=gold)
    token, secret = make_token(app=app, plans=[gold], extra_fields=[["Ticket", "T-1"]])
    admin = UserFactory(username="boss", groups=["Portal administrators"])
    client = Client()
    client.force_login(admin)
    return {
        "gold": gold,
        "free": free,
        "app": app,
        "token": token,
        "secret": secret,
        "admin": admin,
        "client": client,
    }


@contextmanager
def rolled_back():
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def snapshot(token: AccessToken):
    token = AccessToken.objects.get(pk=token.pk)
    return {
        "row": (
            token.owner,
            token.extra_fields,
            token.version,
            token.revoked_at,
            token.revocation_reason,
            token.expires_at,
        ),
        "links": sorted(TokenApi.objects.filter(token=token).values_list("api_id", "plan_id")),
        "events": AuditEvent.objects.filter(token=token).count(),
        "tokens": AccessToken.objects.count(),
        "all_events": AuditEvent.objects.count(),
    }


def assert_not_500(response, what):
    assert response.status_code < 500, f"{what}: {response.status_code}"


# --- portal pages -----------------------------------------------------------------------


@FUZZ_PAGES
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["q", "status", "origin", "o", "app", "api", "plan", "page", "per_page"]
            + ["created_after", "created_before", "expires_after", "expires_before", "x"]
        ),
        hostile_text,
        max_size=6,
    )
)
def test_list_and_history_take_any_query(platform, params):
    client, token = platform["client"], platform["token"]
    for url in (reverse("tokens:list"), reverse("tokens:history", args=[token.public_id])):
        assert_not_500(client.get(url, params), url)


@FUZZ
@given(path=hostile_text)
def test_any_path_is_answered_without_a_500(platform, path):
    response = platform["client"].get("/tokens/" + path.replace("\x00", ""))
    assert_not_500(response, "path")


@FUZZ_PAGES
@given(
    data=hostile_form_data(
        {
            "owner": "Grace",
            "version": "1",
            "extra-TOTAL_FORMS": "2",
            "extra-INITIAL_FORMS": "1",
            "extra-0-name": "Ticket",
            "extra-0-value": "T-2",
            "extra-1-name": "Team",
            "extra-1-value": "Core",
            "api_1": "2",
        },
        extra_keys=["extra-0-DELETE", "add_extra_field", "api_999", "revoked_at", "app"],
    )
)
def test_edit_takes_any_post_and_saves_all_or_nothing(platform, data):
    token, client = platform["token"], platform["client"]
    data = {key.replace("api_1", f"api_{platform['gold'].api_id}"): v for key, v in data.items()}
    if data.get(f"api_{platform['gold'].api_id}") == "2":
        data[f"api_{platform['gold'].api_id}"] = str(platform["free"].pk)
    with rolled_back():
        before = snapshot(token)
        response = client.post(reverse("tokens:edit", args=[token.public_id]), data)
        assert_not_500(response, "edit")
        after = snapshot(token)
        if after == before:
            return
        # A save: one version, one audit event, and only the editable parts changed.
        assert response.status_code == 302
        assert after["row"][2] == before["row"][2] + 1
        assert after["events"] == before["events"] + 1
        assert after["row"][3:] == before["row"][3:]
        assert after["tokens"] == before["tokens"]
        event = AuditEvent.objects.filter(token=token).latest("id")
        assert event.action == AuditAction.EDITED and event.token_version == after["row"][2]
        if "owner" in event.changes:
            assert event.changes["owner"][1] == after["row"][0]


@FUZZ_PAGES
@given(
    data=hostile_form_data(
        {
            "app": "1",
            "owner": "Linus",
            "expires_on": "2099-12-31",
            "use_subscriptions": "on",
            "nonce": "abc",
            "extra-TOTAL_FORMS": "1",
            "extra-INITIAL_FORMS": "0",
            "extra-0-name": "Ticket",
            "extra-0-value": "T-3",
        },
        extra_keys=["api_1", "add_extra_field", "origin", "digest"],
    )
)
def test_create_takes_any_post_and_creates_whole_tokens_or_nothing(platform, data):
    client = platform["client"]
    if data.get("app") == "1":
        data["app"] = str(platform["app"].pk)
    with rolled_back():
        count = AccessToken.objects.count()
        response = client.post(reverse("tokens:create"), data)
        assert_not_500(response, "create")
        created = AccessToken.objects.exclude(pk=platform["token"].pk)
        if AccessToken.objects.count() == count:
            return
        assert response.status_code == 200 and AccessToken.objects.count() == count + 1
        [token] = created
        assert token.origin == "portal" and token.revoked_at is None
        assert list(token.events.values_list("action", flat=True)) == [AuditAction.CREATED]


@FUZZ
@given(data=hostile_form_data({"reason": "leaked"}, extra_keys=["revoked_by", "version"]))
def test_revoke_takes_any_post_and_revokes_wholly_or_not_at_all(platform, data):
    token, client = platform["token"], platform["client"]
    with rolled_back():
        response = client.post(reverse("tokens:revoke", args=[token.public_id]), data)
        assert_not_500(response, "revoke")
        token.refresh_from_db()
        revokes = AuditEvent.objects.filter(token=token, action=AuditAction.REVOKED)
        if token.revoked_at is None:
            assert not revokes.exists()
        else:
            [event] = revokes
            assert event.changes.get("revocation_reason", [None, ""])[1] == token.revocation_reason


# --- login and two-factor ------------------------------------------------------------


@FUZZ
@given(data=hostile_form_data({"username": "boss", "password": "x", "next": "/tokens/"}))
def test_login_takes_any_post(platform, data):
    response = Client().post(reverse("login"), data)
    assert_not_500(response, "login")
    assert response.status_code != 302 or data.get("password") == "correct horse battery staple"


@FUZZ_PAGES
@given(data=hostile_form_data({"code": "123456", "next": "/tokens/"}))
def test_two_factor_pages_take_any_post(platform, data, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "REQUIRE_MFA": True}
    admin = platform["admin"]
    with rolled_back():
        TOTPDevice.objects.create(user=admin, name="app", confirmed=True)
        mfa.new_recovery_codes(admin)
        client = Client()
        client.force_login(admin)
        response = client.post(reverse("mfa-verify"), data)
        assert_not_500(response, "verify")
        assert response.status_code != 302 or "_auth_user_id" in client.session
    with rolled_back():
        client = Client()
        client.force_login(admin)
        response = client.post(reverse("mfa-setup"), data)
        assert_not_500(response, "setup")
        assert not TOTPDevice.objects.filter(user=admin, confirmed=True).exists() or (
            response.status_code == 200 and b"recovery codes" in response.content.lower()
        )


# --- OAuth and the gateway -----------------------------------------------------------

content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
    ]
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=300,
)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@FUZZ
@given(
    endpoint=st.sampled_from(["/oauth/token/", "/oauth/revoke/", "/oauth/introspect/"]),
    body=st.one_of(st.binary(max_size=3000), hostile_text.map(lambda t: t.encode())),
    content_type=content_types,
    authorization=st.one_of(st.none(), header_text, st.just("good")),
    query=st.one_of(st.just(""), header_text),
)
def test_oauth_endpoints_take_any_request(
    platform, endpoint, body, content_type, authorization, query
):
    headers = {}
    if authorization == "good":
        headers["authorization"] = basic(platform["app"].client_id, CLIENT_SECRET)
    elif authorization is not None:
        headers["authorization"] = authorization
    with rolled_back():
        before = snapshot(platform["token"])
        response = Client().generic(
            "POST",
            endpoint + (f"?{query}" if query else ""),
            body,
            content_type=content_type,
            headers=headers,
        )
        assert_not_500(response, endpoint)
        assert response["Content-Type"].startswith("application/json") or not response.content
        after = snapshot(platform["token"])
        if response.status_code != 200 or endpoint == "/oauth/introspect/":
            assert after == before, "a refused request changed the database"


@FUZZ
@given(
    authorization=st.one_of(st.none(), header_text, st.just("good")),
    uri=st.one_of(st.none(), header_text),
    method=st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "DELETE"]),
)
def test_the_gateway_takes_any_request(platform, authorization, uri, method):
    headers = {}
    if authorization == "good":
        headers["authorization"] = f"Bearer {platform['secret']}"
    elif authorization is not None:
        headers["authorization"] = authorization
    if uri is not None:
        headers["x-original-uri"] = uri
    with rolled_back():
        before = snapshot(platform["token"])
        response = Client().generic(method, "/gateway/auth", headers=headers)
        assert response.status_code in (200, 401, 403)
        assert snapshot(platform["token"])["row"][:5] == before["row"][:5]
