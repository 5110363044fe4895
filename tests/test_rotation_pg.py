"""ROTATE's races on PostgreSQL, real threads each on its own database connection:
rotations at once make one new token; a rotation racing a revoke ends consistent.

Run by the second pass of ``.ci/run`` (DATABASE_URL → PostgreSQL); skipped with the
reason on SQLite, whose single writer cannot show these races.
"""

from datetime import timedelta

import pytest

from tests.factories import PlanFactory, UserFactory, make_token
from tests.gateway.test_concurrency_pg import fresh, race
from tokens import services
from tokens.models import AccessToken, App, AuditAction, TokenRotation

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("needs_postgresql"),
]

ROUNDS = 5


@pytest.fixture
def plan():
    return PlanFactory(name="Gold", api__base_path="/pay")


@pytest.mark.parametrize("grace", [timedelta(0), timedelta(hours=1)])
def test_rotations_at_once_make_one_new_token(plan, grace):
    actor = UserFactory(username="ops")
    for _ in range(ROUNDS):
        rotations_at_once(plan, grace, actor)


def rotations_at_once(plan, grace, actor):
    token, _ = make_token(plans=[plan])
    tokens_before = AccessToken.objects.count()

    def rotate():
        return services.token_rotate(token=fresh(token), grace=grace, actor=actor)

    results = race(*[rotate] * 6)

    issued = [r for r in results if isinstance(r, services.IssuedToken)]
    refused = [r for r in results if isinstance(r, services.TokenNotRotatable)]
    assert len(issued) == 1 and len(refused) == 5, results
    assert AccessToken.objects.count() == tokens_before + 1
    assert TokenRotation.objects.get(old=token).new == issued[0].token
    assert all(issued[0].token.masked_code in r.message for r in refused)
    assert fresh(token).events.filter(action=AuditAction.ROTATED).count() == 1


def test_a_rotation_racing_a_revoke_ends_consistent(plan):
    actor = UserFactory(username="ops")
    outcomes = {rotation_racing_revoke(plan, actor) for _ in range(ROUNDS * 2)}
    assert outcomes <= {"rotate first", "revoke first"}


def rotation_racing_revoke(plan, actor) -> str:
    token, _ = make_token(plans=[plan])

    rotated, revoked = race(
        lambda: services.token_rotate(token=fresh(token), grace=timedelta(hours=1), actor=actor),
        lambda: services.token_revoke(token=fresh(token), actor=actor, reason="leaked"),
    )

    assert revoked is True  # the revoke always wins its own race
    token.refresh_from_db()
    assert token.status == "revoked" and token.revocation_reason == "leaked"
    assert services.finish_due_rotations(now=token.revoked_at + timedelta(days=1)) == 0
    rotation = TokenRotation.objects.filter(old=token).first()
    if isinstance(rotated, services.IssuedToken):
        # Rotated first, then revoked: the new token lives on, the old is revoked, and
        # the revocation is the last change to it.
        assert rotation is not None and rotation.new == rotated.token
        assert fresh(rotated.token).status == "active"
        [revoke_event] = token.events.filter(action=AuditAction.REVOKED)
        assert revoke_event.token_version == token.version == 3
        return "rotate first"
    # Revoked first: the rotation saw it and made nothing.
    assert isinstance(rotated, services.TokenNotRotatable), rotated
    assert "revoked" in rotated.message
    assert rotation is None
    assert not token.events.filter(action=AuditAction.ROTATED).exists()
    return "revoke first"


def test_a_rotation_racing_a_rename_of_its_app_never_deadlocks(plan):
    """A rename locks the app, then its tokens; a rotation takes its locks in that
    order too, so neither can wait for the other in a cycle."""
    for round_ in range(ROUNDS * 2):
        token, _ = make_token(plans=[plan])

        def rename(round_=round_, app_id=token.app_id):
            app = App.objects.get(pk=app_id)
            app.name = f"Renamed {round_}"
            app.save()
            return True

        rotated, renamed = race(
            lambda token=token: services.token_rotate(
                token=fresh(token), grace=timedelta(hours=1), actor=None
            ),
            rename,
        )

        assert renamed is True
        assert isinstance(rotated, services.IssuedToken), rotated
        new = fresh(rotated.token)
        assert new.app_name == fresh(token).app_name == f"Renamed {round_}"
