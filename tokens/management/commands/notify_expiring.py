"""E-mail the contacts of Active tokens about to expire, and the administrators who opted
in a digest of them; once per token per threshold (tokens.services.notices says how).

    manage.py notify_expiring [--days 7 14 30] [--dry-run]

Safe to run from cron, and twice at once.
"""

from django.core.management.base import BaseCommand, CommandError

from tokens import services
from tokens.services.notices import DEFAULT_THRESHOLDS


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise CommandError(f"--days takes whole numbers of days, not {text!r}.") from None
    if not 1 <= days <= 3650:
        raise CommandError(f"--days: {days} is not between 1 and 3650.")
    return days


class Command(BaseCommand):
    help = "E-mail the contacts of tokens about to expire, and opted-in administrators a digest."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            nargs="+",
            type=_days,
            default=list(DEFAULT_THRESHOLDS),
            help="Thresholds in days before expiry (default: 7 14 30).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be sent; send and record nothing.",
        )

    def handle(self, *args, days, dry_run, **options):
        run = services.tokens_notify_expiring(thresholds=days, dry_run=dry_run)
        verb = "would send" if dry_run else "sent"
        for mail in run.mails:
            about = (
                f"within {mail.threshold_days} days"
                if mail.threshold_days is not None
                else "digest"
            )
            self.stdout.write(f"{verb} to {mail.recipient}: {', '.join(mail.codes)} ({about})")
        for failure in run.failed:
            self.stderr.write(f"not sent to {failure}")
        tokens = len(run.tokens)
        self.stdout.write(
            f"{tokens} token{'s' if tokens != 1 else ''} reached a threshold "
            f"({', '.join(map(str, run.thresholds))} days); {len(run.mails)} mail"
            f"{'s' if len(run.mails) != 1 else ''} {verb}; {run.without_contact} without a "
            f"contact address; {len(run.failed)} failed"
            + (" (dry run: nothing sent or recorded)" if dry_run else "")
        )
        if run.failed:
            raise CommandError(f"{len(run.failed)} mail(s) could not be sent; see above.")
