"""Create a support-staff user: can log into Django admin, view everything, revoke tokens."""

import getpass
import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

SUPPORT_GROUP = "Support staff"
PASSWORD_ENV = "DJANGO_SUPPORT_PASSWORD"


class Command(BaseCommand):
    help = (
        f"Create a user in the “{SUPPORT_GROUP}” group who can log into /admin/ "
        "(is_staff), view tokens, apps, APIs, plans and audit events, and revoke tokens. "
        f"The password comes from --password, else the {PASSWORD_ENV} environment "
        "variable, else an interactive prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password",
            help=f"Visible in the shell history and process list; prefer {PASSWORD_ENV} "
            "or the prompt.",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Never prompt: fail if no password is given.",
        )

    def handle(self, *args, username, email, password, interactive, **options):
        User = get_user_model()
        username = username.strip()
        if not username:
            raise CommandError("The username must not be empty.")
        if User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists():
            raise CommandError(f"A user named “{username}” already exists.")
        try:
            group = Group.objects.get(name=SUPPORT_GROUP)
        except Group.DoesNotExist as exc:
            raise CommandError(
                f"The group “{SUPPORT_GROUP}” does not exist: run `manage.py migrate` first."
            ) from exc

        password = password or os.environ.get(PASSWORD_ENV) or ""
        if not password:
            if not interactive:
                raise CommandError(f"Give a password with --password or {PASSWORD_ENV}.")
            password = self.prompt_password()
        user = User(**{User.USERNAME_FIELD: username}, email=email, is_staff=True)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("The password was refused: " + " ".join(exc.messages)) from exc

        with transaction.atomic():
            user.set_password(password)
            user.save()
            user.groups.add(group)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created support-staff user “{username}”: log in at /admin/ to look up "
                "and revoke tokens."
            )
        )

    def prompt_password(self) -> str:
        for _ in range(3):
            password = getpass.getpass("Password: ")
            if not password:
                self.stderr.write("The password must not be empty.")
            elif password != getpass.getpass("Password (again): "):
                self.stderr.write("The passwords do not match.")
            else:
                return password
        raise CommandError("No password given.")
