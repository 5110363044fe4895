"""Who a failed login counts against, and what its log line says of the name typed."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from tokens import crypto

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def one_failure_allowed(settings):
    settings.TOKEN_PORTAL = {
        **settings.TOKEN_PORTAL,
        "RATE_LIMITS": {**settings.TOKEN_PORTAL["RATE_LIMITS"], "login_user": "1/h"},
    }


def attempt(username, password, addr="203.0.113.5"):
    return Client().post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=addr
    )


def security_events(caplog, name):
    return [r.security for r in caplog.records if getattr(r, "security", {}).get("event") == name]


# Spellings that Django's login form reads as "ada" (NFKC, trimmed); case shares too.
SPELLINGS = ["ａda", "𝖆𝖉𝖆", "ａｄａ", " ada ", "ADA"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_equivalent_spellings_of_a_username_share_one_failure_budget(one_failure_allowed, spelling):
    UserFactory(username="ada")
    UserFactory(username="adb")
    assert attempt(spelling, "wrong", addr="203.0.113.1").status_code == 200
    # The plain spelling, from another address: locked by the odd one's failure.
    assert attempt("ada", PASSWORD, addr="203.0.113.2").status_code == 429
    # Another account keeps its own budget.
    assert attempt("adb", PASSWORD, addr="203.0.113.3").status_code == 302


@pytest.mark.parametrize("spelling", ["ａda", "𝖆𝖉𝖆"])
def test_a_spelling_that_logs_in_as_the_user_is_locked_with_the_user(one_failure_allowed, spelling):
    UserFactory(username="ada")
    assert attempt(spelling, PASSWORD).status_code == 302  # the form reads it as "ada"
    assert attempt("ada", "wrong", addr="203.0.113.1").status_code == 200
    assert attempt(spelling, PASSWORD, addr="203.0.113.2").status_code == 429


@pytest.mark.parametrize(
    "typed",
    [
        "hunter2-is-my-password",
        crypto.generate_token(),
        "api_key_" + crypto.generate_client_secret(),
        "correct horse battery staple",
    ],
)
def test_a_failed_login_never_logs_an_unknown_username_in_clear(caplog, typed):
    UserFactory(username="ada")
    caplog.set_level("INFO", logger="portal.middleware")
    attempt(typed, "whatever")
    attempt(typed, "whatever else")
    attempt(typed + "!", "whatever")
    first, again, other = security_events(caplog, "authn_login_fail")
    assert typed not in caplog.text and typed[:12] not in caplog.text
    assert first["username"].startswith("unknown ")
    assert first["username_length"] == len(typed)
    # The same name tried again can be told apart from another, without learning it.
    assert first["username"] == again["username"] != other["username"]


def test_a_failed_login_of_a_known_user_names_the_user(caplog):
    UserFactory(username="ada")
    caplog.set_level("INFO", logger="portal.middleware")
    attempt("ａda", "wrong")
    (event,) = security_events(caplog, "authn_login_fail")
    assert event["username"] == "ada"


def test_a_locked_login_never_logs_an_unknown_username_in_clear(one_failure_allowed, caplog):
    caplog.set_level("INFO", logger="portal.middleware")
    typed = "hunter2-is-my-password"
    attempt(typed, "x")
    assert attempt(typed, "y").status_code == 429
    (event,) = security_events(caplog, "authn_login_lock")
    assert typed not in caplog.text
    assert event["username"].startswith("unknown ")
