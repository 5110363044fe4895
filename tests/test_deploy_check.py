"""With the production variables of the README, Django's deployment checklist is clean."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def production_env(**overrides) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "TOKEN_PORTAL_"))
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="portal.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://portal.example.com",
    )
    env.update(overrides)
    return env


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("debug, mfa", [("0", True), ("1", False)])
def test_production_settings_harden_cookies_and_require_two_factor(debug, mfa):
    script = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'session_secure': s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE,"
        "'session_httponly': s.SESSION_COOKIE_HTTPONLY, 'csrf_httponly': s.CSRF_COOKIE_HTTPONLY,"
        "'samesite': [s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SAMESITE],"
        "'session_name': s.SESSION_COOKIE_NAME, 'hsts': s.SECURE_HSTS_SECONDS,"
        "'redirect': s.SECURE_SSL_REDIRECT, 'mfa': s.TOKEN_PORTAL['REQUIRE_MFA'],"
        "'hasher': s.PASSWORD_HASHERS[0]}))"
    )
    result = manage("shell", "-c", script, env=production_env(DJANGO_DEBUG=debug))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["mfa"] is mfa
    assert values["session_httponly"] and values["csrf_httponly"]
    assert values["samesite"] == ["Lax", "Lax"]
    assert values["hasher"].endswith("Argon2PasswordHasher")
    if debug == "0":
        assert values["session_secure"] and values["csrf_secure"] and values["redirect"]
        assert values["session_name"] == "__Host-sessionid"
        assert values["hsts"] >= 31536000


def test_two_factor_can_be_turned_on_in_debug_mode():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.TOKEN_PORTAL['REQUIRE_MFA'])",
        env=production_env(DJANGO_DEBUG="1", TOKEN_PORTAL_REQUIRE_MFA="1"),
    )
    assert result.stdout.strip().splitlines()[-1] == "True"
