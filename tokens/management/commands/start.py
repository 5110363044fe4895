"""``manage.py start [ADDRPORT]``: the portal on one machine, in one command: Django's
development server and the job worker, in one process (the worker in threads of its own),
so that a revoke made by a job purges the very cache the server answers from, with or
without Redis. Ctrl-C stops both. For production, run gunicorn and ``jobs_worker``
processes with REDIS_URL (docs/operations.md)."""

import threading
import uuid

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_tasks_db.management.commands.db_worker import Worker

from tokens.management.commands.jobs_worker import maintain

DEFAULT_ADDRPORT = "127.0.0.1:8000"


def start_job_worker() -> threading.Event:
    """django-tasks-db's worker and the jobs' upkeep, each in a daemon thread of this
    process; setting the returned event stops the upkeep (the worker dies with the process)."""
    worker = Worker(
        queue_names=["default"],
        interval=0.5,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=f"start-{uuid.uuid4().hex[:8]}",
        excluded_queue_names=[],
    )
    stop = threading.Event()
    threading.Thread(target=worker.run, name="jobs-worker", daemon=True).start()
    threading.Thread(target=maintain, args=(stop,), name="jobs-maintenance", daemon=True).start()
    return stop


class Command(BaseCommand):
    help = "Run the web server and the job worker together, in one process (Ctrl-C stops both)."

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport", nargs="?", default=DEFAULT_ADDRPORT, help="host:port of the web server"
        )

    def handle(self, *args, addrport, **options):
        host, _, port = addrport.rpartition(":")
        stop = start_job_worker()
        self.stdout.write(
            f"Token Portal at http://{host or '127.0.0.1'}:{port}/ with its job worker. "
            "Ctrl-C stops both."
        )
        try:
            # No autoreloader: it would run the command again in a child process, with a
            # second worker whose cache the server does not share.
            call_command("runserver", addrport, use_reloader=False)
        finally:
            stop.set()
