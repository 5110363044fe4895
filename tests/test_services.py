"""The write services: create, update, revoke tokens; register apps. Each writes its audit."""

import json
from datetime import timedelta

import pytest
from django.core.cache import cache as django_cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tests.factories import (
    ApiFactory,
    AppFactory,
    PlanFactory,
    UserFactory,
    api_with_plans,
    make_token,
)
from tokens import crypto, services
from tokens.gateway import cache
from tokens.models import AccessToken, App, AuditAction, AuditEvent, TokenApi, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture
def alice():
    return UserFactory(username="alice")


@pytest.fixture
def bob():
    return UserFactory(username="bob")


def _links(token) -> dict[int, int]:
    return dict(TokenApi.objects.filter(token=token).values_list("api_id", "plan_id"))


# --- token_create ---------------------------------------------------------------------------


def test_create_returns_the_secret_once_and_stores_only_its_digest(alice):
    app = AppFactory()
    issued = services.token_create(app=app, owner="Ada", actor=alice)
    token = AccessToken.objects.get(pk=issued.token.pk)

    assert crypto.looks_like_token(issued.secret)
    assert token.digest == crypto.digest(issued.secret)
    assert token.masked_code == f"{issued.secret[:12]}…{issued.secret[-4:]}"
    assert token.origin == TokenOrigin.PORTAL
    assert token.created_by == alice
    assert token.version == 1
    row = AccessToken.objects.filter(pk=token.pk).values().get()
    assert not any(issued.secret in str(value) for value in row.values())


def test_create_links_the_chosen_plans_and_extra_fields(alice):
    pay, (gold,) = api_with_plans("Gold")
    orders, (free,) = api_with_plans("Free")

    issued = services.token_create(
        app=AppFactory(),
        owner="Ada",
        plans=[gold, free],
        extra_fields=[("Ticket", "SUP-1"), ["Env", "prod"]],
        actor=alice,
    )

    assert _links(issued.token) == {pay.pk: gold.pk, orders.pk: free.pk}
    issued.token.refresh_from_db()
    assert issued.token.extra_fields == [["Ticket", "SUP-1"], ["Env", "prod"]]


def test_create_writes_the_created_audit_event(alice):
    api, (gold,) = api_with_plans("Gold", name="Payments", version="v2")
    issued = services.token_create(
        app=AppFactory(name="Acme"),
        owner="Ada",
        plans=[gold],
        actor=alice,
        remote_addr="203.0.113.9",
    )

    event = AuditEvent.objects.get(token=issued.token)
    assert event.action == AuditAction.CREATED
    assert (event.actor, event.actor_label) == (alice, "alice")
    assert event.remote_addr == "203.0.113.9"
    assert event.token_version == 1
    assert event.changes["owner"] == [None, "Ada"]
    assert event.changes["app"] == [None, "Acme"]
    assert event.changes["apis"] == [None, {"Payments v2": "Gold"}]
    assert issued.secret not in json.dumps(event.changes)


def test_create_by_an_app_records_the_client_as_actor():
    app = AppFactory(name="Gateway")
    issued = services.token_create(
        app=app, owner="svc", origin=TokenOrigin.OAUTH, grant_type="client_credentials", actor=app
    )

    event = issued.token.events.get()
    assert event.actor is None
    assert event.actor_label == f"client Gateway ({app.client_id})"
    assert issued.token.created_by is None


def test_create_refuses_an_expiry_in_the_past_and_creates_nothing(alice):
    with pytest.raises(services.TokenServiceError, match="future"):
        services.token_create(
            app=AppFactory(),
            owner="Ada",
            expires_at=timezone.now() - timedelta(seconds=1),
            actor=alice,
        )

    assert not AccessToken.objects.exists()
    assert not AuditEvent.objects.exists()


def test_create_refuses_two_plans_of_one_api(alice):
    _, (free, gold) = api_with_plans("Free", "Gold")

    with pytest.raises(services.TokenServiceError, match="one plan per API"):
        services.token_create(app=AppFactory(), owner="Ada", plans=[free, gold], actor=alice)

    assert not AccessToken.objects.exists()


# --- token_update ---------------------------------------------------------------------------


def test_update_changes_owner_extra_fields_and_plans_and_audits_before_after(alice):
    pay, (free, gold) = api_with_plans("Free", "Gold", name="Payments", version="v1")
    orders, (basic,) = api_with_plans("Basic", name="Orders", version="v1")
    ship, (express,) = api_with_plans("Express", name="Shipping", version="v1")
    token, _ = make_token(owner="Old", plans=[free, basic], extra_fields=[["Env", "dev"]])

    changed = services.token_update(
        token=token,
        expected_version=1,
        owner="New",
        extra_fields=[["Env", "prod"], ["Ticket", "T-1"]],
        plans=[gold, express],  # change Payments' plan, drop Orders, add Shipping
        actor=alice,
        remote_addr="198.51.100.7",
    )

    assert changed is True
    token.refresh_from_db()
    assert token.owner == "New"
    assert token.extra_fields == [["Env", "prod"], ["Ticket", "T-1"]]
    assert token.version == 2
    assert _links(token) == {pay.pk: gold.pk, ship.pk: express.pk}
    event = token.events.get(action=AuditAction.EDITED)
    assert event.actor == alice
    assert event.remote_addr == "198.51.100.7"
    assert event.token_version == 2
    assert event.changes == {
        "owner": ["Old", "New"],
        "extra_fields": [[["Env", "dev"]], [["Env", "prod"], ["Ticket", "T-1"]]],
        "apis": [
            {"Orders v1": "Basic", "Payments v1": "Free"},
            {"Payments v1": "Gold", "Shipping v1": "Express"},
        ],
    }


def test_update_records_only_what_changed(alice):
    token, _ = make_token(owner="Old", extra_fields=[["Env", "dev"]])

    services.token_update(
        token=token,
        expected_version=1,
        owner="New",
        extra_fields=[["Env", "dev"]],
        plans=[],
        actor=alice,
    )

    assert token.events.get(action=AuditAction.EDITED).changes == {"owner": ["Old", "New"]}


def test_update_without_a_change_saves_nothing(alice):
    _, (gold,) = api_with_plans("Gold")
    token, _ = make_token(owner="Ada", plans=[gold], extra_fields=[["Env", "dev"]])

    changed = services.token_update(
        token=token,
        expected_version=1,
        owner="Ada",
        extra_fields=[("Env", "dev")],
        plans=[gold],
        actor=alice,
    )

    assert changed is False
    token.refresh_from_db()
    assert token.version == 1
    assert not token.events.filter(action=AuditAction.EDITED).exists()


def test_update_leaves_every_other_field_alone(alice):
    token, _ = make_token(expires_at=timezone.now() + timedelta(days=3))
    before = AccessToken.objects.filter(pk=token.pk).values().get()

    services.token_update(
        token=token,
        expected_version=1,
        owner="Someone else",
        extra_fields=[],
        plans=[],
        actor=alice,
    )

    after = AccessToken.objects.filter(pk=token.pk).values().get()
    differing = {key for key in before if before[key] != after[key]}
    assert differing == {"owner", "version"}


def test_update_based_on_an_old_version_is_refused_and_names_what_changed(alice, bob):
    token, _ = make_token(owner="Original")
    alices_copy = AccessToken.objects.get(pk=token.pk)
    bobs_copy = AccessToken.objects.get(pk=token.pk)
    services.token_update(
        token=bobs_copy, expected_version=1, owner="Bob's", extra_fields=[], plans=[], actor=bob
    )

    with pytest.raises(services.StaleTokenEdit) as excinfo:
        services.token_update(
            token=alices_copy,
            expected_version=1,
            owner="Alice's",
            extra_fields=[["k", "v"]],
            plans=[],
            actor=alice,
        )

    message = excinfo.value.message
    assert "edited by bob" in message
    assert "Owner" in message
    assert "Nothing was saved" in message
    token.refresh_from_db()
    assert token.owner == "Bob's"
    assert token.extra_fields == []
    assert token.events.filter(action=AuditAction.EDITED).count() == 1


def test_update_after_a_revoke_is_refused_as_stale_naming_the_revoke(alice, bob):
    token, _ = make_token()
    services.token_revoke(token=AccessToken.objects.get(pk=token.pk), actor=bob, reason="leak")

    with pytest.raises(services.StaleTokenEdit, match="revoked by bob"):
        services.token_update(
            token=token, expected_version=1, owner="x", extra_fields=[], plans=[], actor=alice
        )


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_expired_and_revoked_tokens_cannot_be_edited(alice, state):
    token, _ = make_token(owner="Ada", **{state: True})
    token.refresh_from_db()

    with pytest.raises(services.TokenNotEditable, match=state):
        services.token_update(
            token=token,
            expected_version=token.version,
            owner="Changed",
            extra_fields=[],
            plans=[],
            actor=alice,
        )

    token.refresh_from_db()
    assert token.owner == "Ada"


def test_update_refuses_two_plans_of_one_api_and_changes_nothing(alice):
    _, (free, gold) = api_with_plans("Free", "Gold")
    token, _ = make_token(owner="Ada", plans=[free])

    with pytest.raises(services.TokenServiceError, match="one plan per API"):
        services.token_update(
            token=token,
            expected_version=1,
            owner="Changed",
            extra_fields=[],
            plans=[free, gold],
            actor=alice,
        )

    token.refresh_from_db()
    assert (token.owner, token.version) == ("Ada", 1)
    assert _links(token) == {free.api_id: free.pk}


def test_update_tells_apart_apis_that_share_a_name_and_version(alice):
    eu, (eu_gold,) = api_with_plans("Gold", name="Payments", version="v1", base_path="/eu/pay")
    us, (us_gold,) = api_with_plans("Gold", name="Payments", version="v1", base_path="/us/pay")
    token, _ = make_token(plans=[eu_gold])

    changed = services.token_update(
        token=token,
        expected_version=1,
        owner=token.owner,
        extra_fields=[],
        plans=[us_gold],
        actor=alice,
    )

    assert changed is True
    assert _links(token) == {us.pk: us_gold.pk}
    before, after = token.events.get(action=AuditAction.EDITED).changes["apis"]
    assert before != after


def test_update_purges_the_gateway_cache_after_commit(alice, transactional_db):
    token, _ = make_token()
    key = cache.token_cache_key(token.digest)
    django_cache.set(key, "cached-answer")

    services.token_update(
        token=token, expected_version=1, owner="New", extra_fields=[], plans=[], actor=alice
    )

    assert django_cache.get(key) != "cached-answer"


# --- token_revoke ---------------------------------------------------------------------------


def test_revoke_marks_the_token_revoked_and_audits_it(alice):
    token, _ = make_token()

    revoked = services.token_revoke(
        token=token, actor=alice, reason="Leaked in a repo", remote_addr="192.0.2.1"
    )

    assert revoked is True
    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revoked_by == "alice"
    assert token.revocation_reason == "Leaked in a repo"
    assert token.version == 2
    event = token.events.get(action=AuditAction.REVOKED)
    assert event.actor == alice
    assert event.remote_addr == "192.0.2.1"
    assert event.changes["revocation_reason"] == [None, "Leaked in a repo"]
    assert event.changes["revoked_at"][0] is None


def test_revoke_is_idempotent(alice, bob):
    token, _ = make_token()
    services.token_revoke(token=token, actor=alice, reason="first")
    token.refresh_from_db()
    first_revoked_at = token.revoked_at

    again = services.token_revoke(token=token, actor=bob, reason="second")

    assert again is False
    token.refresh_from_db()
    assert token.revoked_at == first_revoked_at
    assert (token.revoked_by, token.revocation_reason) == ("alice", "first")
    assert token.events.filter(action=AuditAction.REVOKED).count() == 1


def test_revoke_through_a_stale_copy_changes_nothing_a_second_time(alice, bob):
    token, _ = make_token()
    stale_copy = AccessToken.objects.get(pk=token.pk)
    services.token_revoke(token=token, actor=alice)

    assert services.token_revoke(token=stale_copy, actor=bob) is False
    assert stale_copy.revoked_by == "alice"
    assert token.events.filter(action=AuditAction.REVOKED).count() == 1


def test_portal_cannot_revoke_an_oauth_token(alice):
    token, _ = make_token(origin=TokenOrigin.OAUTH)

    with pytest.raises(services.TokenNotRevocable, match="RFC 7009"):
        services.token_revoke(token=token, actor=alice)

    token.refresh_from_db()
    assert token.revoked_at is None


def test_client_revokes_its_oauth_token_through_the_oauth_channel():
    app = AppFactory(name="Mobile")
    token, _ = make_token(app=app, origin=TokenOrigin.OAUTH)

    assert services.token_revoke(token=token, actor=app, channel=services.RevokeChannel.OAUTH)

    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revoked_by == f"client Mobile ({app.client_id})"


def test_portal_refuses_to_revoke_an_expired_token(alice):
    token, _ = make_token(expired=True)

    with pytest.raises(services.TokenNotRevocable, match="expired"):
        services.token_revoke(token=token, actor=alice)

    token.refresh_from_db()
    assert token.revoked_at is None


def test_revoke_without_reason_records_no_reason(alice):
    token, _ = make_token()

    services.token_revoke(token=token, actor=alice)

    assert set(token.events.get(action=AuditAction.REVOKED).changes) == {"revoked_at"}


def test_revoke_purges_the_gateway_cache_after_commit(alice, transactional_db):
    token, _ = make_token()
    key = cache.token_cache_key(token.digest)
    django_cache.set(key, "cached-answer")

    with transaction.atomic():
        services.token_revoke(token=token, actor=alice)
        assert django_cache.get(key) == "cached-answer"  # not before the commit

    assert django_cache.get(key) == cache.PURGED


# --- Apps ----------------------------------------------------------------------------------


def test_app_create_returns_its_secret_and_stores_a_digest():
    _, (gold,) = api_with_plans("Gold")

    app, secret = services.app_create(name="Acme", subscriptions=[gold], can_introspect=True)

    app.refresh_from_db()
    assert secret.startswith(crypto.CLIENT_SECRET_PREFIX)
    assert app.client_secret_digest == crypto.digest(secret)
    assert app.check_client_secret(secret)
    assert app.can_introspect
    assert [(s.api_id, s.plan_id) for s in app.subscription_set.all()] == [(gold.api_id, gold.pk)]


def test_app_create_refuses_a_taken_name():
    services.app_create(name="Acme")

    with pytest.raises(ValidationError):
        services.app_create(name="Acme")

    assert App.objects.filter(name="Acme").count() == 1


def test_app_create_with_two_plans_of_one_api_creates_nothing():
    api = ApiFactory()
    free, gold = PlanFactory(api=api), PlanFactory(api=api)

    with pytest.raises(services.TokenServiceError):
        services.app_create(name="Acme", subscriptions=[free, gold])

    assert not App.objects.filter(name="Acme").exists()


def test_regenerated_client_secret_replaces_the_old_one():
    app, old = services.app_create(name="Acme")

    new = services.app_regenerate_secret(app=app)

    app.refresh_from_db()
    assert new != old
    assert app.check_client_secret(new)
    assert not app.check_client_secret(old)


def test_actor_label_names_users_apps_and_the_system(alice):
    app = AppFactory(name="Acme")

    assert services.actor_label(alice) == "alice"
    assert services.actor_label(app) == f"client Acme ({app.client_id})"
    assert services.actor_label(None) == "system"


# --- one revoke rule, every path -----------------------------------------------------------


@pytest.mark.parametrize(
    "channel", [services.RevokeChannel.PORTAL, services.RevokeChannel.INCIDENT]
)
@pytest.mark.parametrize("origin", [TokenOrigin.PORTAL, TokenOrigin.OAUTH])
@pytest.mark.parametrize("state", ["active", "expired", "revoked", "revoked and expired"])
def test_a_revoke_a_batch_and_the_confirm_pages_count_follow_one_rule(channel, origin, state):
    """Whatever the path (one REVOKE, a batch of a job, the admin's action, the count a
    confirm page shows before the job), a token is revoked or left alone for the same
    reason."""
    from tokens.services.bulk import Skip, batch_skip_reason

    token, _ = make_token(origin=origin, expired="expired" in state, revoked="revoked" in state)
    now = timezone.now()

    expected = batch_skip_reason(token, channel, now)
    will, skipped = services.count_batch_outcome(AccessToken.objects.filter(pk=token.pk), channel)
    assert (will, skipped) == ((1, {}) if expected is None else (0, {expected: 1}))
    if channel == services.RevokeChannel.PORTAL:
        admin_says = services.portal_revoke_skip_reason(token, now=now)
        assert (admin_says is None) == (expected is None)

    if expected == Skip.ALREADY_REVOKED:
        assert services.token_revoke(token=token, actor=None, channel=channel) is False
    elif expected is None:
        assert services.token_revoke(token=token, actor=None, channel=channel) is True
    else:
        with pytest.raises(services.TokenNotRevocable) as refused:
            services.token_revoke(token=token, actor=None, channel=channel)
        assert ("expired" in refused.value.message) == (expected == Skip.EXPIRED)
        assert ("OAuth" in refused.value.message) == (expected == Skip.OAUTH)
