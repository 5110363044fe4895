"""Races on PostgreSQL with real threads, each on its own database connection.

Run by the second pass of ``.ci/run`` (DATABASE_URL → PostgreSQL); skipped with the
reason on SQLite, whose single writer cannot show these races.
"""

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from tests.factories import UserFactory, make_token
from tokens import services
from tokens.models import AccessToken, AuditAction, AuditEvent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("needs_postgresql"),
]


def race(*jobs: Callable[[], object]) -> list:
    """Run every job in its own thread, all released at once; returns results or errors."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(index, job):
        try:
            barrier.wait(timeout=30)
            results[index] = job()
        except Exception as error:  # the outcome of the race, inspected by the test
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results


def fresh(token) -> AccessToken:
    return AccessToken.objects.get(pk=token.pk)


def events(token, action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(token=token, action=action).order_by("id"))


def test_twenty_parallel_revokes_change_the_token_once_and_audit_it_once(caplog):
    actor = UserFactory(username="ops")
    token, _ = make_token(owner="Ada")
    caplog.set_level("INFO", logger="portal.middleware")

    def revoke(n):
        return lambda: services.token_revoke(token=fresh(token), actor=actor, reason=f"race {n}")

    results = race(*(revoke(n) for n in range(20)))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert results.count(True) == 1 and results.count(False) == 19
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.version == 2  # created (1), revoked (2): one state change
    [revoked] = events(token, AuditAction.REVOKED)
    assert revoked.changes["revocation_reason"][1] == token.revocation_reason
    logged = [
        r
        for r in caplog.records
        if getattr(r, "security", {}).get("event") == "authn_token_revoked"
    ]
    assert len(logged) == 1


ROUNDS = 10


def test_an_edit_racing_a_revoke_never_revives_or_changes_the_revoked_token():
    actor = UserFactory(username="ops")
    outcomes = set()
    for _ in range(ROUNDS):
        outcomes.add(edit_racing_revoke(actor))
    assert outcomes <= {"edit first", "revoke first"}


def edit_racing_revoke(actor) -> str:
    token, _ = make_token(owner="Original")
    loaded = fresh(token)  # what the editor's form was opened on (version 1)

    edit_result, revoke_result = race(
        lambda: services.token_update(
            token=fresh(token),
            expected_version=loaded.version,
            owner="Edited",
            extra_fields=[["Ticket", "T-1"]],
            plans=[],
            actor=actor,
        ),
        lambda: services.token_revoke(token=fresh(token), actor=actor, reason="leaked"),
    )

    assert revoke_result is True
    token.refresh_from_db()
    assert token.revoked_at is not None  # never revived
    [revoked] = events(token, AuditAction.REVOKED)
    edits = events(token, AuditAction.EDITED)
    # Whatever the order, nothing changed the token after its revocation.
    assert token.version == revoked.token_version
    assert all(edit.token_version < revoked.token_version for edit in edits)
    if edit_result is True:
        assert token.owner == "Edited" and len(edits) == 1
        return "edit first"
    assert isinstance(edit_result, services.StaleTokenEdit | services.TokenNotEditable)
    assert token.owner == "Original" and edits == []
    return "revoke first"


def test_two_stale_edits_never_both_win():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for _ in range(ROUNDS):
        two_stale_edits(alice, bob)


def two_stale_edits(alice, bob):
    token, _ = make_token(owner="Original")
    seen = fresh(token).version

    def edit(owner, actor):
        return lambda: services.token_update(
            token=fresh(token),
            expected_version=seen,
            owner=owner,
            extra_fields=[],
            plans=[],
            actor=actor,
        )

    results = race(edit("Alice's", alice), edit("Bob's", bob))

    winners = [r for r in results if r is True]
    losers = [r for r in results if isinstance(r, services.StaleTokenEdit)]
    assert len(winners) == 1 and len(losers) == 1, results
    token.refresh_from_db()
    [edit_event] = events(token, AuditAction.EDITED)
    assert token.version == seen + 1 == edit_event.token_version
    assert token.owner == edit_event.changes["owner"][1]
    assert "changed by someone else" in losers[0].message
