"""Register a client app and print its credentials once, as JSON."""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tokens import services
from tokens.gateway.cache import CachePurgeFailed
from tokens.models import Api, Plan, base_path_validator


def _refuse_control_characters(option: str, value: str) -> None:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise CommandError(f"{option} {value!r}: control characters are not allowed.")


def _valid(instance, label: str):
    """``instance`` checked against its model (lengths, formats, uniqueness) before saving."""
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise CommandError(f"{label}: " + "; ".join(exc.messages)) from exc
    return instance


def parse_subscription(value: str) -> tuple[str, str]:
    _refuse_control_characters("--subscribe", value)
    base_path, sep, plan_name = value.rpartition(":")
    if not sep or not base_path or not plan_name.strip():
        raise CommandError(
            f"--subscribe {value!r}: expected API_BASE_PATH:PLAN_NAME, e.g. /payments:Gold"
        )
    try:
        base_path_validator(base_path)
    except ValidationError as exc:
        raise CommandError(f"--subscribe {value!r}: {exc.messages[0]}") from exc
    return base_path, plan_name.strip()


class Command(BaseCommand):
    help = (
        "Register an app and print one JSON object with its client_id and client_secret "
        "(the only time the secret is shown). APIs and plans named in --subscribe that do "
        "not exist yet are created."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="The app's unique name.")
        parser.add_argument(
            "--subscribe",
            action="append",
            default=[],
            metavar="API_BASE_PATH:PLAN_NAME",
            help="Subscribe the app to an API under a plan; may be repeated.",
        )
        parser.add_argument(
            "--can-introspect",
            action="store_true",
            help="Allow the app to call the introspection endpoint (for gateways).",
        )

    def handle(self, *args, name, subscribe, can_introspect, **options):
        name = name.strip()
        if not name:
            raise CommandError("--name must not be empty.")
        _refuse_control_characters("--name", name)
        wanted = [parse_subscription(value) for value in subscribe]
        base_paths = [base_path for base_path, _ in wanted]
        if len(base_paths) != len(set(base_paths)):
            raise CommandError("Each API may be subscribed once (one plan per API).")
        purge_failed = None
        try:
            with transaction.atomic():
                plans = []
                for base_path, plan_name in wanted:
                    label = f"--subscribe {base_path}:{plan_name}"
                    api = Api.objects.filter(base_path=base_path).first()
                    if api is None:
                        name_max = Api._meta.get_field("name").max_length
                        title = base_path.strip("/").replace("/", " ").title() or "Root"
                        api = _valid(Api(base_path=base_path, name=title[:name_max].strip()), label)
                        api.save()
                    plan = Plan.objects.filter(api=api, name=plan_name).first()
                    if plan is None:
                        plan = _valid(Plan(api=api, name=plan_name), label)
                        plan.save()
                    plans.append(plan)
                try:
                    app, secret = services.app_create(
                        name=name, subscriptions=plans, can_introspect=can_introspect
                    )
                except ValidationError as exc:
                    raise CommandError("; ".join(exc.messages)) from exc
        except CachePurgeFailed as exc:  # committed: the secret must still be shown, once
            purge_failed = exc
        self.stdout.write(
            json.dumps(
                {
                    "name": app.name,
                    "client_id": app.client_id,
                    "client_secret": secret,
                    "can_introspect": app.can_introspect,
                    "subscriptions": [
                        {"api": plan.api.base_path, "plan": plan.name} for plan in plans
                    ],
                }
            )
        )
        if purge_failed is not None:
            self.stderr.write(f"Warning: {purge_failed.message}")
