"""Background jobs: the list's "Revoke selected" and an app's "Revoke all tokens".

A ``Job`` row is the job's record (who, what, the counts) and its progress. It runs in
batches (``services.revoke_batch``): each batch's revocations, audit events and the job's
counters and ``cursor`` (the last token id handled) commit in one transaction, so a job
that stops anywhere (a killed worker) resumes after its last committed batch and revokes
nothing twice. A small job runs in the request that started it; a big one through
Django's tasks API (django-tasks, database backend), by ``manage.py jobs_worker``.

Whoever runs a job first takes its lease (``task_id``, renewed by every batch): a second
runner of the same job (a resumed job whose first worker was only slow) finds the lease
taken and stops, and a batch whose lease was lost meanwhile is rolled back.
"""

import logging
import time
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.http import QueryDict
from django.utils import timezone
from django_tasks import task

from portal.logs import security_log
from tokens import services
from tokens.conf import setting
from tokens.filters import token_filter
from tokens.gateway import cache
from tokens.models import AccessToken, App, Job, JobKind, JobStatus

logger = logging.getLogger(__name__)

# How long a batch whose cache purge failed keeps retrying it before the job stops.
PURGE_RETRY_SECONDS = 20


class LeaseLost(Exception):
    """Another runner took this job over (this one was thought stalled)."""


def channel_of(job: Job) -> str:
    """The revoke channel: the list's bulk revoke follows the portal's REVOKE (portal
    tokens only); an app's "Revoke all tokens" is an incident action, OAuth tokens too."""
    if job.kind == JobKind.APP_REVOKE:
        return services.RevokeChannel.INCIDENT
    return services.RevokeChannel.PORTAL


def selection(query: str, app: App | None = None):
    """The tokens a job's ``query`` (or ``app``) names, before the cut-off: the list's
    filter of that query string, or the tokens ticked one by one (``token=<public id>``)."""
    if app is not None:
        return AccessToken.objects.filter(app=app)
    params = QueryDict(query)
    if "token" in params:
        ids = []
        for value in params.getlist("token"):
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                continue
        return AccessToken.objects.filter(public_id__in=ids)
    return token_filter(params, queryset=AccessToken.objects.all()).qs


def job_tokens(job: Job):
    return selection(job.query, job.app).filter(created_at__lte=job.cutoff).order_by()


def start(
    *,
    kind: str,
    actor,
    description: str,
    total: int,
    query: str = "",
    app: App | None = None,
    reason: str = "",
    cutoff=None,
    remote_addr: str | None = None,
    launch_now: bool = True,
) -> Job:
    """Record the job and ``launch`` it (unless ``launch_now`` is false: the caller
    launches it once its own transaction is done)."""
    job = Job.objects.create(
        kind=kind,
        actor=services.lifecycle._actor_user(actor),
        actor_label=services.actor_label(actor),
        remote_addr=remote_addr or None,
        description=description,
        query=query,
        app=app,
        reason=reason.strip(),
        cutoff=cutoff or timezone.now(),
        total=total,
    )
    security_log(
        "job_started",
        actor=actor,
        remote_addr=remote_addr,
        job=str(job.public_id),
        kind=kind,
        description=description,
        total=total,
        on_commit=True,
    )
    if launch_now:
        launch(job)
    return job


def launch(job: Job) -> None:
    """Run ``job`` here and now when it is small (up to ``BULK_REVOKE_INLINE_LIMIT``
    tokens), else queue it for a worker once the current transaction commits. Called
    outside a transaction, each batch commits (and purges) on its own, and a purge that
    fails is the job's to report, not the caller's."""
    if job.total <= setting("BULK_REVOKE_INLINE_LIMIT"):
        run(job.pk)
        job.refresh_from_db()
    else:
        transaction.on_commit(lambda: enqueue(job))


def start_app_revoke(*, app, actor, reason, regenerate_secret, remote_addr):
    """Revoke every token of ``app`` (a job), and give it a new client secret first when
    asked, in one transaction: no token can be issued with the leaked secret meanwhile.
    Returns the job and the new secret (None when not regenerated)."""
    with transaction.atomic():
        secret = None
        if regenerate_secret:
            secret = services.app_regenerate_secret(app=app, actor=actor, remote_addr=remote_addr)
        cutoff = timezone.now()
        total = app.tokens.filter(created_at__lte=cutoff).count()
        job = start(
            launch_now=False,
            kind=JobKind.APP_REVOKE,
            actor=actor,
            description=f"every token of the app {app.name} ({app.client_id})",
            total=total,
            app=app,
            reason=reason,
            cutoff=cutoff,
            remote_addr=remote_addr,
        )
    launch(job)
    return job, secret


def enqueue(job: Job) -> None:
    """Queue a task to run ``job``; that task's id becomes the job's lease holder, so a
    runner still working on it (a stalled one) loses its lease at its next batch."""
    result = run_job.enqueue(job.pk)
    Job.objects.filter(pk=job.pk).update(task_id=result.id)


@task(takes_context=True)
def run_job(context, job_id: int) -> str:
    """The task the worker runs (its return value is the job's final status)."""
    run(job_id, runner=str(context.task_result.id))
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first() or "gone"


def _claim(job_id: int, runner: str) -> Job | None:
    """Take the job's lease: a queued job, or a running one whose runner stopped
    reporting (``JOB_STALL_SECONDS``). None when someone else holds it or it is done."""
    now = timezone.now()
    stalled = now - timedelta(seconds=setting("JOB_STALL_SECONDS"))
    taken = Job.objects.filter(
        Q(status=JobStatus.QUEUED)
        | Q(status=JobStatus.RUNNING, task_id=runner)  # handed to this task by resume_stalled
        | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stalled),
        pk=job_id,
    ).update(
        status=JobStatus.RUNNING,
        task_id=runner,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    if not taken:
        return None
    job = Job.objects.get(pk=job_id)
    if job.started_at is None:
        job.started_at = now
        Job.objects.filter(pk=job_id).update(started_at=now)
    return job


def run(job_id: int, *, runner: str | None = None) -> None:
    """Run (or resume) the job until every token of it is handled."""
    runner = runner or uuid.uuid4().hex
    job = _claim(job_id, runner)
    if job is None:
        return
    try:
        if job.attempts > 1:
            _purge_revoked_by(job)  # a resumed job: its purges may not all have happened
        _run_batches(job, runner)
    except LeaseLost:
        logger.warning("Job %s was taken over by another runner; this one stops.", job.pk)
        return
    except Exception as error:
        logger.exception("Job %s failed", job.pk)
        Job.objects.filter(pk=job.pk, task_id=runner).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=_describe_error(error),
        )
        security_log("job_failed", job=str(job.public_id), error=type(error).__name__)
        return
    finished = timezone.now()
    Job.objects.filter(pk=job.pk, task_id=runner).update(
        status=JobStatus.DONE, finished_at=finished, heartbeat_at=finished, error=""
    )
    job.refresh_from_db()
    security_log(
        "job_finished",
        actor=job.actor_label,
        remote_addr=job.remote_addr,
        job=str(job.public_id),
        kind=job.kind,
        description=job.description,
        revoked=job.revoked,
        skipped=job.skipped_total,
    )


def _describe_error(error: Exception) -> str:
    if isinstance(error, cache.CachePurgeFailed):
        return (
            f"{error} The revocations made so far are saved; Resume retries the purge and goes on."
        )
    return "The job stopped on an unexpected error (see the server log); Resume goes on."


def _run_batches(job: Job, runner: str) -> None:
    size = max(1, setting("JOB_BATCH_SIZE"))
    pause = setting("JOB_BATCH_PAUSE")
    tokens = job_tokens(job)
    channel = channel_of(job)
    while True:
        try:
            # The batch's purges wait once for every process to drop its copies, not
            # once each (portal.cache.tier); then the batch is effective everywhere.
            with cache.settle_once(), transaction.atomic():
                ids = list(
                    tokens.filter(pk__gt=job.cursor)
                    .order_by("pk")
                    .values_list("pk", flat=True)[:size]
                )
                if not ids:
                    return
                result = services.revoke_batch(
                    token_ids=ids,
                    actor=job.actor or job.actor_label,
                    reason=job.reason,
                    channel=channel,
                    remote_addr=job.remote_addr,
                    job=job,
                )
                skipped = dict(job.skipped)
                for why, n in result.skipped.items():
                    skipped[why] = skipped.get(why, 0) + n
                if not Job.objects.filter(pk=job.pk, task_id=runner).update(
                    cursor=ids[-1],
                    processed=F("processed") + len(ids),
                    revoked=F("revoked") + result.revoked,
                    skipped=skipped,
                    heartbeat_at=timezone.now(),
                ):
                    raise LeaseLost
                job.cursor, job.skipped = ids[-1], skipped
        except cache.CachePurgeFailed:
            # The batch is committed; its purges are retried for a while, then the job
            # stops (Resume purges every token it revoked again).
            _retry_purges(ids)
        if pause:
            time.sleep(pause)


def _retry_purges(ids: list[int]) -> None:
    digests = list(AccessToken.objects.filter(pk__in=ids).values_list("digest", flat=True))
    deadline = time.monotonic() + PURGE_RETRY_SECONDS
    while True:
        try:
            with cache.settle_once():
                for digest in digests:
                    cache.purge_token(digest)
            return
        except cache.CachePurgeFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _purge_revoked_by(job: Job) -> None:
    digests = AccessToken.objects.filter(events__job=job).values_list("digest", flat=True)
    with cache.settle_once():
        for digest in digests.iterator(chunk_size=2000):
            cache.purge_token(digest)


def resume(job: Job) -> bool:
    """Queue a failed job again (an administrator's **Resume**). Whether it was failed."""
    if not Job.objects.filter(pk=job.pk, status=JobStatus.FAILED).update(
        status=JobStatus.QUEUED, finished_at=None
    ):
        return False
    transaction.on_commit(lambda: enqueue(job))
    return True


def resume_stalled(now=None) -> list[int]:
    """Queue again every job that is running with no runner reporting for
    ``JOB_STALL_SECONDS`` (its worker was killed, or the request running it died), or
    queued that long with no task waiting to run it. Each worker calls this every few
    seconds; the new task takes the job's lease, so the old runner, should it be alive
    after all, stops at its next batch (rolled back)."""
    now = now or timezone.now()
    stalled = now - timedelta(seconds=setting("JOB_STALL_SECONDS"))
    candidates = Job.objects.filter(
        Q(status=JobStatus.RUNNING, heartbeat_at__lt=stalled)
        | Q(status=JobStatus.QUEUED, created_at__lt=stalled)
    )
    resumed = []
    for job in candidates:
        if _task_waiting(job):
            continue
        logger.warning("Job %s stalled (last progress %s); queued again.", job.pk, job.heartbeat_at)
        enqueue(job)
        resumed.append(job.pk)
    return resumed


def _task_waiting(job: Job) -> bool:
    """Whether the task holding the job's lease is queued, not yet started."""
    from django_tasks_db.models import DBTaskResult

    try:
        task_id = uuid.UUID(job.task_id)
    except ValueError:  # none, or a request's own runner id (a job run inline)
        return False
    return DBTaskResult.objects.filter(pk=task_id, status="READY").exists()


def maintain() -> None:
    """What each worker does every few seconds (``manage.py jobs_worker``): resume the
    jobs whose runner stopped, and revoke the old tokens of rotations whose grace has
    ended (their own deferred task does too; this catches a lost one)."""
    services.finish_due_rotations()
    resumed = resume_stalled()
    if resumed:
        logger.warning("Resumed stalled jobs: %s", resumed)
