"""``manage.py jobs_worker``: runs the portal's background jobs (django-tasks-db's
``db_worker``, with its options), and every few seconds resumes jobs whose worker died
(``tokens.jobs.resume_stalled``). Run one or more per deployment (docs/operations.md);
``manage.py start`` starts one beside the web server."""

import logging
import sys
import threading

from django.db import close_old_connections
from django_tasks_db.management.commands import db_worker

from portal.deployment import shared_cache_problem
from tokens import jobs

logger = logging.getLogger("tokens.jobs")

MAINTENANCE_SECONDS = 5


def maintain(stop: threading.Event) -> None:
    """Resume stalled jobs, then wait; until ``stop`` is set. Errors are logged: the
    worker goes on (the database may be back at the next round)."""
    while not stop.is_set():
        try:
            close_old_connections()
            jobs.maintain()
        except Exception:
            logger.exception("Job maintenance failed; retrying in %s s", MAINTENANCE_SECONDS)
        finally:
            close_old_connections()
        stop.wait(MAINTENANCE_SECONDS)


class Command(db_worker.Command):
    help = (
        "Run the portal's background jobs (bulk revocations), resuming any whose worker "
        "stopped. Same options as django-tasks-db's db_worker."
    )

    def run_from_argv(self, argv):
        # A process of its own (not call_command, which runs in the caller's process):
        # without a shared cache, the revokes of its jobs could not reach the servers'.
        if shared_cache_problem(2) is not None:
            self.stderr.write(
                "CommandError: a job worker needs REDIS_URL: without a shared cache, a token "
                "its job revokes could stay valid in a web server's own cache. Set REDIS_URL, "
                "or run `manage.py start`, which runs the jobs in the web server's process."
            )
            sys.exit(1)
        return super().run_from_argv(argv)

    def handle(self, *args, **options):
        stop = threading.Event()
        thread = threading.Thread(
            target=maintain, args=(stop,), name="jobs-maintenance", daemon=True
        )
        thread.start()
        try:
            return super().handle(*args, **options)
        finally:
            stop.set()
