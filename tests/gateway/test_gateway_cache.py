"""Caching that never lies: purges after commit, race-safe fills, expiry, cache outages."""

import time
from datetime import timedelta

import pytest
from django.core.cache import cache as django_cache
from django.db import DatabaseError
from django.utils import timezone

from tests.factories import PlanFactory, make_token
from tokens import crypto, services
from tokens.gateway import cache, last_used
from tokens.gateway import check as gateway

AUTH_URL = "/gateway/auth"


@pytest.fixture
def plan(db):
    return PlanFactory(api__base_path="/pay")


def check(client, secret, uri="/pay/x"):
    return client.get(AUTH_URL, HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_ORIGINAL_URI=uri)


def test_a_cached_check_needs_no_query(client, plan, django_assert_num_queries):
    _, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200  # fills the cache; records the use

    with django_assert_num_queries(0):
        assert check(client, secret).status_code == 200


def test_a_revoked_token_is_answered_from_the_cache_too(client, plan, django_assert_num_queries):
    _, secret = make_token(plans=[plan], revoked=True)
    assert check(client, secret).status_code == 401

    with django_assert_num_queries(0):
        assert check(client, secret).status_code == 401


def test_unknown_tokens_are_not_cached(client, plan):
    secret = crypto.generate_token()

    assert check(client, secret).status_code == 401
    assert django_cache.get(cache.token_cache_key(crypto.digest(secret))) is None


def test_revoke_purges_the_cached_answer_before_it_returns(transactional_db, client, plan):
    token, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200

    services.token_revoke(token=token, actor=None, reason="leaked")

    assert check(client, secret).status_code == 401


def test_an_edit_purges_the_cached_answer(transactional_db, client, plan):
    token, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200

    services.token_update(
        token=token,
        expected_version=token.version,
        owner=token.owner,
        extra_fields=[],
        plans=[],
        actor=None,
    )

    assert check(client, secret).status_code == 403


def test_a_check_racing_a_revoke_cannot_cache_its_stale_answer(
    transactional_db, client, plan, monkeypatch
):
    """Check reads "active" → revoke commits and purges → check tries to cache "active"."""
    token, secret = make_token(plans=[plan])
    real_load = gateway._load

    def load_then_revoke(digest, at):
        loaded = real_load(digest, at)
        services.token_revoke(token=token, actor=None)  # commits and purges right here
        return loaded

    monkeypatch.setattr(gateway, "_load", load_then_revoke)
    assert check(client, secret).status_code == 200  # it did read before the revoke
    monkeypatch.setattr(gateway, "_load", real_load)

    assert check(client, secret).status_code == 401


def test_a_slow_check_does_not_cache_what_it_read():
    """A read older than half a marker's lifetime may predate a purge that has lapsed."""
    slow_start = time.monotonic() - cache.PURGE_MARKER_SECONDS / 2

    cache.populate("gw:tok:slow", "stale", 60, started=slow_start)
    cache.populate("gw:tok:fast", "fresh", 60, started=time.monotonic())

    assert django_cache.get("gw:tok:slow") is None
    assert django_cache.get("gw:tok:fast") == "fresh"


def test_a_purge_marker_is_never_overwritten_by_a_check(client, plan):
    _, secret = make_token(plans=[plan])
    key = cache.token_cache_key(crypto.digest(secret))
    cache.purge_token(crypto.digest(secret))

    assert check(client, secret).status_code == 200

    assert django_cache.get(key) == cache.PURGED


def test_a_cached_answer_never_outlives_the_expiry(client, plan, monkeypatch):
    expires_at = timezone.now() + timedelta(seconds=30)
    _, secret = make_token(plans=[plan], expires_at=expires_at)
    assert check(client, secret).status_code == 200

    monkeypatch.setattr(gateway, "now", lambda: expires_at.timestamp() + 0.001)

    assert check(client, secret).status_code == 401


def test_the_cache_lifetime_is_capped_by_the_expiry(client, plan, monkeypatch):
    added = {}
    real_add = django_cache.add

    def spy(key, value, timeout=None, **kwargs):
        added[key] = timeout
        return real_add(key, value, timeout, **kwargs)

    monkeypatch.setattr(django_cache, "add", spy)
    _, secret = make_token(plans=[plan], expires_at=timezone.now() + timedelta(seconds=20))

    assert check(client, secret).status_code == 200

    assert 18 <= added[cache.token_cache_key(crypto.digest(secret))] <= 20


def test_caching_can_be_switched_off(client, plan, settings, django_assert_num_queries):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "GATEWAY_CACHE_SECONDS": 0}
    _, secret = make_token(plans=[plan])
    check(client, secret)

    # The token with its APIs (one query), the catalogue (its APIs, plans and apps).
    with django_assert_num_queries(4):
        assert check(client, secret).status_code == 200


def test_when_the_cache_is_down_checks_go_to_the_database(client, plan, monkeypatch):
    _, good = make_token(plans=[plan])
    _, revoked = make_token(plans=[plan], revoked=True)

    def down(*args, **kwargs):
        raise ConnectionError("redis down")

    # "read" and "mark" are the lean calls of portal/redis_cache.py and locmem_cache.py.
    for method in ("get", "get_many", "add", "set", "incr", "read", "mark"):
        if hasattr(django_cache, method):
            monkeypatch.setattr(django_cache, method, down)

    assert check(client, good).status_code == 200
    assert check(client, revoked).status_code == 401


def test_last_used_is_written_at_most_once_per_resolution(client, plan, django_assert_num_queries):
    token, secret = make_token(plans=[plan])

    with django_assert_num_queries(5):  # the token, the catalogue (3), one UPDATE
        check(client, secret)
    with django_assert_num_queries(0):
        for _ in range(10):
            check(client, secret)

    token.refresh_from_db()
    assert token.last_used_at is not None


def test_last_used_is_shared_across_processes_through_the_cache(client, plan):
    token, secret = make_token(plans=[plan])
    check(client, secret)
    last_used._recently_used.clear()  # as if another process answered the next check
    token.refresh_from_db()
    first = token.last_used_at

    check(client, secret)

    token.refresh_from_db()
    assert token.last_used_at == first


def test_a_new_api_is_matched_at_once(transactional_db, client, plan):
    _, secret = make_token(plans=[plan])
    assert check(client, secret, "/pay/admin/x").status_code == 200

    PlanFactory(api__base_path="/pay/admin")

    assert check(client, secret, "/pay/admin/x").status_code == 403


def test_each_process_reloads_the_catalogue_when_its_version_changes(
    client, plan, django_assert_num_queries
):
    _, secret = make_token(plans=[plan])
    check(client, secret)
    with django_assert_num_queries(0):
        check(client, secret)

    cache.purge_catalogue()  # what any process does after an API change commits

    with django_assert_num_queries(3):  # the catalogue's APIs, plans and apps
        assert check(client, secret).status_code == 200


def test_a_deleted_token_is_purged_too(transactional_db, client, plan):
    token, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200

    token.delete()

    assert check(client, secret).status_code == 401


def test_a_use_written_late_carries_its_own_time(client, plan, monkeypatch):
    """Batched uses wait for the process's next check; they are stamped when they happened."""
    _, first = make_token(plans=[plan])
    late, second = make_token(plans=[plan])
    assert check(client, first).status_code == 200  # written at once; the next batch is due in 1 s
    an_hour_ago = time.time() - 3600
    monkeypatch.setattr(last_used.time, "time", lambda: an_hour_ago)
    assert check(client, second).status_code == 200  # queued, as if an hour ago
    monkeypatch.undo()
    late.refresh_from_db()
    assert late.last_used_at is None

    last_used._flush_due = 0.0  # the second has passed: the next check writes the batch
    assert check(client, first).status_code == 200

    late.refresh_from_db()
    assert late.last_used_at is not None
    assert abs(late.last_used_at.timestamp() - an_hour_ago) < 1


def test_uses_whose_write_failed_stay_pending(client, plan, monkeypatch, caplog):
    token, secret = make_token(plans=[plan])

    def down(token_ids, when):
        raise DatabaseError("database unavailable")

    monkeypatch.setattr(last_used, "_write_last_used", down)
    assert check(client, secret).status_code == 200  # a lost write never fails the check
    assert token.pk in last_used._pending_uses
    assert "Could not record the use" in caplog.text
    monkeypatch.undo()

    last_used.flush_last_used()

    token.refresh_from_db()
    assert token.last_used_at is not None
    assert not last_used._pending_uses


def test_a_catalogue_is_kept_only_in_the_redis_lifetime_it_was_read_in(
    client, plan, monkeypatch, django_assert_num_queries
):
    """A Redis restored from a snapshot (or an old primary back in charge) may answer a
    version this process kept before a change it never heard of: a new server lifetime
    means the catalogue is loaded again, whatever the version says."""
    _, secret = make_token(plans=[plan])
    epoch = [b"first"]
    monkeypatch.setattr(cache, "server_epoch", lambda: epoch[0])
    check(client, secret)
    with django_assert_num_queries(0):
        check(client, secret)

    epoch[0] = b"second"  # same version in the cache, another server lifetime

    with django_assert_num_queries(3):  # the catalogue's APIs, plans and apps
        assert check(client, secret).status_code == 200
