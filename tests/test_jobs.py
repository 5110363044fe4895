"""Background jobs (tokens.jobs): bulk revoke and an app's "Revoke all tokens", in batches,
inline or through django-tasks' database worker, resumed after a stop, never twice."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.factories import AppFactory, make_token
from tokens import jobs, services
from tokens.gateway import check
from tokens.models import AccessToken, AuditAction, AuditEvent, Job, JobKind, JobStatus, TokenOrigin

pytestmark = pytest.mark.django_db


def _portal_tokens(app, n, **kwargs):
    return [make_token(app=app, **kwargs) for _ in range(n)]


def _start(query, total, actor=None, **kwargs):
    return jobs.start(
        kind=JobKind.BULK_REVOKE,
        actor=actor,
        description=f"tokens matching {query}",
        total=total,
        query=query,
        **kwargs,
    )


def test_a_small_job_runs_in_the_request_revoking_each_token_with_its_audit_event(
    transactional_db, portal_admin
):
    app = AppFactory(name="Acme")
    tokens = _portal_tokens(app, 5)
    other = make_token()[0]
    assert all(check.check_token(secret) is not None for _, secret in tokens)  # now cached
    job = _start(f"app={app.pk}", 5, actor=portal_admin, reason="laptop stolen")

    assert job.status == JobStatus.DONE
    assert (job.total, job.processed, job.revoked, job.skipped_total) == (5, 5, 5, 0)
    for token, secret in tokens:
        token.refresh_from_db()
        assert token.revoked_at is not None
        assert token.revoked_by == portal_admin.get_username()
        assert token.revocation_reason == "laptop stolen"
        event = token.events.get(action=AuditAction.REVOKED)
        assert event.job == job and event.actor == portal_admin
        assert event.token_version == token.version
        assert check.check_token(secret) is None  # the cached answer was purged
    other.refresh_from_db()
    assert other.revoked_at is None


def test_the_portal_channel_skips_oauth_expired_and_revoked_tokens_and_counts_why():
    app = AppFactory()
    keep = _portal_tokens(app, 2)
    make_token(app=app, origin=TokenOrigin.OAUTH)
    make_token(app=app, expired=True)
    make_token(app=app, revoked=True)
    job = _start(f"app={app.pk}", 5)
    assert job.revoked == 2
    assert job.skipped == {
        services.Skip.OAUTH: 1,
        services.Skip.EXPIRED: 1,
        services.Skip.ALREADY_REVOKED: 1,
    }
    assert all(AccessToken.objects.get(pk=t.pk).revoked_at for t, _ in keep)
    assert (
        AccessToken.objects.filter(app=app, origin=TokenOrigin.OAUTH, revoked_at=None).count() == 1
    )


def test_an_app_revoke_is_an_incident_action_that_takes_oauth_tokens_too():
    app = AppFactory()
    _portal_tokens(app, 2)
    make_token(app=app, origin=TokenOrigin.OAUTH)
    job = jobs.start(kind=JobKind.APP_REVOKE, actor=None, description="all of it", total=3, app=app)
    assert job.revoked == 3
    assert not AccessToken.objects.filter(app=app, revoked_at=None).exists()


def test_tokens_created_after_the_confirmation_are_left_alone():
    app = AppFactory()
    _portal_tokens(app, 2)
    cutoff = timezone.now()
    later, _ = make_token(app=app)
    job = _start(f"app={app.pk}", 2, cutoff=cutoff)
    assert job.revoked == 2
    later.refresh_from_db()
    assert later.revoked_at is None


def test_a_filter_matching_zero_tokens_finishes_with_nothing_done():
    job = _start("q=nobody-has-this-owner", 0)
    assert (job.status, job.processed, job.revoked) == (JobStatus.DONE, 0, 0)


def test_a_big_job_is_queued_and_run_by_the_worker_in_batches(
    settings, django_capture_on_commit_callbacks
):
    settings.TOKEN_PORTAL = {
        **settings.TOKEN_PORTAL,
        "BULK_REVOKE_INLINE_LIMIT": 3,
        "JOB_BATCH_SIZE": 2,
    }
    app = AppFactory()
    _portal_tokens(app, 7)
    with django_capture_on_commit_callbacks(execute=True):
        job = _start(f"app={app.pk}", 7)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.processed == 0
    call_command("jobs_worker", batch=True, interval=0, startup_delay=False)
    job.refresh_from_db()
    assert (job.status, job.processed, job.revoked) == (JobStatus.DONE, 7, 7)
    assert AuditEvent.objects.filter(job=job, action=AuditAction.REVOKED).count() == 7
    assert DBTaskResult.objects.get(pk=job.task_id).status == "SUCCESSFUL"


def test_a_stopped_job_resumes_after_its_last_batch_and_revokes_nothing_twice(
    settings, django_capture_on_commit_callbacks
):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "JOB_BATCH_SIZE": 2}
    app = AppFactory()
    _portal_tokens(app, 5)
    job = Job.objects.create(
        kind=JobKind.BULK_REVOKE,
        actor_label="alice",
        description="x",
        query=f"app={app.pk}",
        cutoff=timezone.now(),
        total=5,
    )
    # A worker revokes one batch and is killed: the job is left running, its heartbeat old.
    calls = []
    real = services.revoke_batch

    def dies_after_one_batch(**kwargs):
        if calls:
            raise KeyboardInterrupt  # the process being stopped
        calls.append(1)
        return real(**kwargs)

    services.revoke_batch = dies_after_one_batch
    try:
        with pytest.raises(KeyboardInterrupt):
            jobs.run(job.pk, runner="killed-worker")
    finally:
        services.revoke_batch = real
    job.refresh_from_db()
    assert (job.status, job.processed, job.revoked) == (JobStatus.RUNNING, 2, 2)

    # Not yet stalled: nothing is resumed. Once stalled: queued again, run to the end.
    assert jobs.resume_stalled() == []
    later = timezone.now() + timedelta(
        seconds=settings.TOKEN_PORTAL.get("JOB_STALL_SECONDS", 60) + 1
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.resume_stalled(now=later) == [job.pk]
    assert jobs.resume_stalled(now=later) == []  # its task is waiting: not queued twice
    call_command("jobs_worker", batch=True, interval=0, startup_delay=False)
    job.refresh_from_db()
    assert (job.status, job.processed, job.revoked, job.attempts) == (JobStatus.DONE, 5, 5, 2)
    assert AuditEvent.objects.filter(action=AuditAction.REVOKED, token__app=app).count() == 5


def test_a_runner_that_lost_its_lease_stops_and_its_batch_is_rolled_back(settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "JOB_BATCH_SIZE": 2}
    app = AppFactory()
    _portal_tokens(app, 4)
    job = Job.objects.create(
        kind=JobKind.BULK_REVOKE,
        actor_label="a",
        description="x",
        query=f"app={app.pk}",
        cutoff=timezone.now(),
        total=4,
    )
    real = services.revoke_batch

    def taken_over(**kwargs):
        result = real(**kwargs)
        Job.objects.filter(pk=job.pk).update(task_id="someone-else")
        return result

    services.revoke_batch = taken_over
    try:
        jobs.run(job.pk, runner="first")
    finally:
        services.revoke_batch = real
    job.refresh_from_db()
    assert job.processed == 0 and job.status == JobStatus.RUNNING
    assert not AccessToken.objects.filter(app=app, revoked_at__isnull=False).exists()


def test_running_a_finished_job_again_changes_nothing():
    app = AppFactory()
    _portal_tokens(app, 3)
    job = _start(f"app={app.pk}", 3)
    before = AuditEvent.objects.count()
    jobs.run(job.pk)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, cursor=0)
    jobs.run(job.pk)  # even from the start: every token is already revoked
    job.refresh_from_db()
    assert AuditEvent.objects.count() == before
    assert job.revoked == 3


def test_a_batch_follows_the_one_revoke_reason_rule(monkeypatch):
    from tokens.services import lifecycle

    monkeypatch.setitem(lifecycle._REASON_REQUIRED, services.RevokeChannel.PORTAL, True)
    token, _ = make_token()
    with pytest.raises(services.TokenServiceError, match="reason is required"):
        services.revoke_batch(token_ids=[token.pk], actor=None, reason="  ")
    token.refresh_from_db()
    assert token.revoked_at is None
    assert services.revoke_batch(token_ids=[token.pk], actor=None, reason="lost").revoked == 1


@pytest.fixture(autouse=True)
def _worker_keeps_the_test_connection(monkeypatch):
    # The worker run in-process (call_command) closes "old" connections between tasks;
    # on PostgreSQL that closes the test's own transaction's connection.
    monkeypatch.setattr(
        "django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None
    )
