"""Login throttling: per client address on every attempt, per account on failures."""

import os
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def limits(settings):
    def set_limits(**limits):
        settings.TOKEN_PORTAL = {
            **settings.TOKEN_PORTAL,
            "RATE_LIMITS": {**settings.TOKEN_PORTAL["RATE_LIMITS"], **limits},
        }

    return set_limits


def attempt(client, username, password, addr="198.51.100.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=addr
    )


def test_too_many_attempts_from_one_address_get_429_with_retry_after(client, limits):
    limits(login="3/m")
    user = UserFactory(username="ada")
    for _ in range(3):
        assert attempt(client, "ada", "wrong").status_code == 200
    response = attempt(client, "ada", PASSWORD)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "Too many login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not held back by this one.
    assert attempt(Client(), user.username, PASSWORD, addr="198.51.100.8").status_code == 302


def test_failures_on_one_account_lock_it_whatever_the_address(client, limits):
    limits(login_user="3/h")
    UserFactory(username="ada")
    UserFactory(username="bob")
    for n in range(3):
        assert attempt(client, "ada", "wrong", addr=f"203.0.113.{n}").status_code == 200
    response = attempt(client, "ADA", PASSWORD, addr="203.0.113.99")  # case does not help
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert attempt(Client(), "bob", PASSWORD).status_code == 302


def test_a_successful_login_clears_the_accounts_failures(client, limits):
    limits(login_user="3/h")
    UserFactory(username="ada")
    attempt(client, "ada", "wrong")
    attempt(client, "ada", "wrong")
    assert attempt(client, "ada", PASSWORD).status_code == 302
    other = Client()
    attempt(other, "ada", "wrong")
    attempt(other, "ada", "wrong")
    assert attempt(other, "ada", PASSWORD).status_code == 302


def test_failed_and_throttled_logins_are_logged_without_the_password(client, limits, caplog):
    limits(login_user="1/h")
    UserFactory(username="ada")
    caplog.set_level("INFO", logger="portal.middleware")
    attempt(client, "ada", "s3cret-guess")
    attempt(client, "ada", "s3cret-guess-2")
    events = [r.security for r in caplog.records if hasattr(r, "security")]
    assert [e["event"] for e in events] == ["authn_login_fail", "authn_login_lock"]
    assert events[0]["username"] == "ada" and events[0]["remote_addr"] == "198.51.100.7"
    assert "s3cret" not in caplog.text


def test_a_successful_login_is_logged(client, caplog):
    UserFactory(username="ada")
    caplog.set_level("INFO", logger="portal.middleware")
    attempt(client, "ada", PASSWORD)
    events = [r.security for r in caplog.records if hasattr(r, "security")]
    assert events[-1]["event"] == "authn_login_success" and events[-1]["actor"] == "ada"


def test_passwords_are_hashed_with_argon2(settings):
    from django.contrib.auth.hashers import make_password

    from portal import settings as project_settings

    settings.PASSWORD_HASHERS = project_settings.PASSWORD_HASHERS  # (this module uses MD5)
    assert make_password("x" * 12).startswith("argon2$argon2id$")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a shared cache)")
def test_the_address_limit_is_shared_by_every_process(client, limits):
    """Another process (another app server) uses up the budget; this one answers 429."""
    limits(login="3/m")
    UserFactory(username="ada")
    script = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'portal.settings');"
        "django.setup(); from django.conf import settings;"
        "settings.TOKEN_PORTAL['RATE_LIMITS']['login'] = '3/m';"
        "from tokens.ratelimit import retry_after;"
        "[retry_after('login', '192.0.2.50') for _ in range(3)]"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy())
    assert attempt(client, "ada", PASSWORD, addr="192.0.2.50").status_code == 429
