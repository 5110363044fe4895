"""``manage.py start [ADDRPORT]``: everything the portal needs on one machine, in one
command: the web server (Django's ``runserver``) and the job worker (``jobs_worker``).
Ctrl-C (or SIGTERM) stops both; if either stops, so does the other. For production,
run gunicorn and one or more ``jobs_worker`` under a process manager (docs/operations.md).
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

DEFAULT_ADDRPORT = "127.0.0.1:8000"


class Command(BaseCommand):
    help = "Run the web server and the job worker together (Ctrl-C stops both)."

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport", nargs="?", default=DEFAULT_ADDRPORT, help="host:port of the web server"
        )
        parser.add_argument(
            "--workers", type=int, default=1, help="how many job workers to run (default 1)"
        )

    def handle(self, *args, addrport, workers, **options):
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        python = sys.executable
        commands = [[python, manage, "runserver", addrport, "--noreload"]]
        commands += [[python, manage, "jobs_worker", "--interval", "0.5"]] * max(0, workers)
        processes = [subprocess.Popen(command) for command in commands]  # noqa: S603

        def stop(signum=None, frame=None):
            for process in processes:
                if process.poll() is None:
                    process.terminate()

        signal.signal(signal.SIGTERM, stop)
        host, _, port = addrport.rpartition(":")
        self.stdout.write(
            f"Token Portal: http://{host or '127.0.0.1'}:{port}/ with {workers} job "
            f"worker{'s' if workers != 1 else ''}. Ctrl-C stops them.",
        )
        try:
            while all(process.poll() is None for process in processes):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        failed = [p.returncode for p in processes if p.returncode not in (0, -signal.SIGTERM)]
        if failed:
            sys.exit(failed[0] if failed[0] > 0 else 1)
