"""A whole journey, then a search for the secrets it created: in every page and header
after the one that showed each secret, in every log line (also the database's), in the
database dump (sessions decoded) and in error reports."""

import base64
import io
import json
import logging
import re
import sys

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.views.debug import get_exception_reporter_class

from portal.logs import SecretMaskingFilter, mask_secrets
from tests.factories import PlanFactory, UserFactory
from tokens.models import AccessToken

pytestmark = pytest.mark.usefixtures("fast_passwords")

PASSWORD = "correct horse battery staple"


class Recorder:
    """Every page the journey saw, except the one answer allowed to show each secret."""

    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def keep(self, label, response):
        headers = "\n".join(f"{k}: {v}" for k, v in response.items())
        body = b"".join(response.streaming_content) if response.streaming else response.content
        self.seen.append((label, headers + "\n" + body.decode("utf-8", "replace")))
        return response


@pytest.fixture
def captured_logs():
    """The project's own log output (masking filter and JSON formatter), and the raw
    records before any masking, from every logger, at DEBUG, SQL included."""
    configured = next(h for h in logging.getLogger().handlers if h.formatter is not None)
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(configured.formatter)
    for filter_ in configured.filters:
        handler.addFilter(filter_)
    raw: list[str] = []

    class Raw(logging.Handler):
        def emit(self, record):
            raw.append((record.name, record.getMessage()))

    raw_handler = Raw()
    loggers = [logging.getLogger(), logging.getLogger("django"), logging.getLogger("django.server")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(raw_handler)  # first: sees records before masking
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    connection.force_debug_cursor = True
    yield output, raw
    connection.force_debug_cursor = False
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.removeHandler(raw_handler)
        lg.setLevel(level)


def find_secret(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, secret in secrets.items() if secret in text]


# Real commits: audit log lines and cache purges happen on commit, as in production.
@pytest.mark.django_db(transaction=True)
def test_a_full_journey_leaves_no_secret_anywhere(captured_logs):
    output, raw_records = captured_logs
    record = Recorder()
    PlanFactory(name="Gold", api__name="Payments", api__base_path="/payments")
    UserFactory(username="ada", password=PASSWORD, groups=["Portal administrators"])
    UserFactory(username="sam", password=PASSWORD, groups=["Support staff"], is_staff=True)

    # A client app is registered from the command line (its one sight of the secret).
    stdout = io.StringIO()
    call_command(
        "create_app",
        "--name",
        "Acme",
        "--subscribe",
        "/payments:Gold",
        "--can-introspect",
        stdout=stdout,
    )
    app = json.loads(stdout.getvalue())
    client_secret = app["client_secret"]
    basic = "Basic " + base64.b64encode(f"{app['client_id']}:{client_secret}".encode()).decode()

    # An administrator logs in and creates a token (its one sight of that secret).
    ada = Client()
    record.keep("login page", ada.get(reverse("login")))
    record.keep("login", ada.post(reverse("login"), {"username": "ada", "password": PASSWORD}))
    record.keep("new", ada.get(reverse("tokens:create")))
    from tokens.models import App

    created = ada.post(
        reverse("tokens:create"),
        {
            "app": App.objects.get(client_id=app["client_id"]).pk,
            "owner": "Grace",
            "use_subscriptions": "on",
            "extra-TOTAL_FORMS": "0",
            "extra-INITIAL_FORMS": "0",
            "nonce": "journey",
        },
    )
    portal_secret = re.search(r'value="(tpk_[0-9A-Za-z]+)"', created.content.decode()).group(1)
    token = AccessToken.objects.by_secret(portal_secret).get()

    # The client app gets a token over OAuth (its one sight of that secret).
    issued = Client().post(
        "/oauth/token/",
        "grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded",
        headers={"authorization": basic},
    )
    oauth_secret = issued.json()["access_token"]
    secrets = {"portal token": portal_secret, "oauth token": oauth_secret, "client": client_secret}

    # Everything else the product does with them.
    gateway, api = Client(), Client()
    for secret in (portal_secret, oauth_secret):
        record.keep(
            "gateway",
            gateway.get(
                "/gateway/auth",
                headers={"authorization": f"Bearer {secret}", "x-original-uri": "/payments/x"},
            ),
        )
        record.keep(
            "introspect",
            api.post(
                "/oauth/introspect/",
                f"token={secret}",
                content_type="application/x-www-form-urlencoded",
                headers={"authorization": basic},
            ),
        )
    record.keep("re-post of the creation", ada.post(reverse("tokens:create"), {"nonce": "journey"}))
    for name in ("detail", "edit", "history"):
        record.keep(name, ada.get(reverse(f"tokens:{name}", args=[token.public_id])))
    record.keep("list", ada.get(reverse("tokens:list")))
    record.keep("search by prefix", ada.get(reverse("tokens:list"), {"q": portal_secret[:12]}))
    pasted = ada.get(reverse("tokens:list"), {"q": portal_secret, "o": "owner"})
    assert token.masked_code in pasted.content.decode()  # found, shown by its masked code
    record.keep("search by the pasted full token", pasted)
    record.keep(
        "edit",
        ada.post(
            reverse("tokens:edit", args=[token.public_id]),
            {
                "owner": "Grace Hopper",
                "version": token.version,
                "extra-TOTAL_FORMS": "0",
                "extra-INITIAL_FORMS": "0",
            },
            follow=True,
        ),
    )
    record.keep(
        "revoke with the secret pasted as the reason",
        ada.post(
            reverse("tokens:revoke", args=[token.public_id]),
            {"reason": f"leaked {portal_secret}"},
            follow=True,
        ),
    )
    record.keep(
        "oauth revoke",
        api.post(
            "/oauth/revoke/",
            f"token={oauth_secret}",
            content_type="application/x-www-form-urlencoded",
            headers={"authorization": basic},
        ),
    )
    for secret in (portal_secret, oauth_secret):  # revoked tokens presented again
        record.keep(
            "gateway after revoke",
            gateway.get("/gateway/auth", headers={"authorization": f"Bearer {secret}"}),
        )
    record.keep("history after", ada.get(reverse("tokens:history", args=[token.public_id])))

    # Support staff look the token up in Django admin by pasting it.
    sam = Client()
    sam.post(reverse("login"), {"username": "sam", "password": PASSWORD})
    record.keep(
        "admin search",
        sam.post(
            reverse("admin:tokens_accesstoken_changelist"),
            {"q": portal_secret, "_search": "1"},
            follow=True,
        ),
    )
    record.keep("admin token", sam.get(reverse("admin:tokens_accesstoken_change", args=[token.pk])))
    record.keep("admin history", sam.get(reverse("admin:tokens_auditevent_changelist")))
    record.keep("admin apps", sam.get(reverse("admin:tokens_app_changelist")))

    # --- the search ------------------------------------------------------------------
    for label, text in record.seen:
        assert not find_secret(text, secrets), f"secret in the answer of {label}"
    events = [json.loads(line) for line in output.getvalue().splitlines()]
    names = {event.get("event") for event in events}
    assert {"authn_token_created", "authn_token_revoked", "authn_token_reuse"} <= names
    assert not find_secret(output.getvalue(), secrets), "secret in the log output"
    # oauthlib's own DEBUG lines print issued tokens: the handlers mask those.
    leaked_raw = [
        m for name, m in raw_records if find_secret(m, secrets) and not name.startswith("oauthlib")
    ]
    assert leaked_raw == [], "a log call was given a secret (masked, but fix the call)"

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert not find_secret(dump.getvalue(), secrets), "secret in the database dump"
    for session in Session.objects.all():
        assert not find_secret(json.dumps(session.get_decoded(), default=str), secrets)
    token.refresh_from_db()
    assert "[masked]" in token.revocation_reason


@pytest.mark.django_db
def test_error_reports_never_show_a_secret(rf):
    secret = "tpk_" + "Q" * 49
    client_secret = "tpcs_" + "Z" * 43
    request = rf.post(
        "/oauth/token/?next=x",
        {"client_secret": client_secret, "owner": f"pasted {secret}", "token": secret},
        headers={"authorization": f"Bearer {secret}"},
    )

    def view(request, token_secret=secret):
        note = f"processing {secret}"  # noqa: F841  (a local the report would show)
        raise ValueError(f"boom with {secret}")

    try:
        view(request)
    except ValueError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
        text = reporter.get_traceback_text()
        html = reporter.get_traceback_html()
    for report in (text, html):
        assert secret not in report and client_secret not in report


def test_the_masking_filter_covers_messages_arguments_and_tracebacks():
    secret = "tpk_" + "Q" * 49
    try:
        raise RuntimeError(f"failed for {secret}")
    except RuntimeError:
        record = logging.LogRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "token %s, auth %s",
            (secret, "Bearer abcdefghijkl"),
            sys.exc_info(),
        )
    SecretMaskingFilter().filter(record)
    assert secret not in record.getMessage() and "abcdefghijkl" not in record.getMessage()
    assert secret not in record.exc_text
    assert mask_secrets(f"client_secret=tpcs_{'a' * 43}&x=1") == "client_secret=[masked]&x=1"
    assert mask_secrets("tpk_ABCDEFGH…wxyz") == "tpk_ABCDEFGH…wxyz"  # a masked code stays


@pytest.mark.django_db
def test_a_secret_pasted_as_owner_or_extra_field_is_refused(portal_admin_client):
    from tests.factories import make_token

    token, secret = make_token(owner="Ada")
    for field, value in (("owner", f"see {secret}"), ("extra-0-value", secret)):
        data = {
            "owner": "Ada",
            "version": token.version,
            "extra-TOTAL_FORMS": "1",
            "extra-INITIAL_FORMS": "0",
            "extra-0-name": "Note",
            "extra-0-value": "x",
            field: value,
        }
        response = portal_admin_client.post(reverse("tokens:edit", args=[token.public_id]), data)
        assert response.status_code == 400
        assert "looks like a token or client secret" in response.content.decode()
        token.refresh_from_db()
        assert token.version == 1
