"""The kept libraries as the portal uses them: python-json-logger writes the log lines
(with the portal's fields only, masked), django-csp the Content-Security-Policy (also on
the gateway's fast path, built once and not per answer)."""

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.conf import settings

from portal.logs import MASK, JsonFormatter, SecretMaskingFilter
from portal.middleware import content_security_policy
from portal.wsgi import django_application
from tokens import crypto
from tokens.fastpath import GatewayFastPath


def written(record: logging.LogRecord) -> dict:
    """``record`` as the console handler writes it: masked, then formatted."""
    SecretMaskingFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_a_log_line_holds_the_portals_fields_and_never_the_request_django_attaches():
    secret = crypto.generate_token()

    class Request:  # what django.request's records carry: the path, query string and all
        def __str__(self):
            return f"<WSGIRequest: GET '/tokens/?access_token={secret}'>"

    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Not Found: %s", ("/tokens/",), None
    )
    record.status_code, record.request = 404, Request()

    line = written(record)

    assert list(line) == ["time", "level", "logger", "message", "status"]
    assert line["message"] == "Not Found: /tokens/" and line["status"] == 404
    assert line["level"] == "WARNING" and line["logger"] == "django.request"
    assert line["time"].endswith("+00:00") and len(line["time"].split(".")[1]) == len("123+00:00")


def test_a_security_event_writes_its_fields_after_the_portals():
    record = logging.LogRecord(
        "portal.middleware", logging.INFO, __file__, 1, "authz_fail", (), None
    )
    record.security = {"event": "authz_fail", "actor": "ada", "remote_addr": None, "status": 403}

    line = written(record)

    assert list(line) == [
        "time",
        "level",
        "logger",
        "message",
        "event",
        "actor",
        "remote_addr",
        "status",
    ]
    assert line["remote_addr"] is None and line["status"] == 403


def test_a_traceback_is_written_as_the_masking_filter_left_it():
    secret = crypto.generate_token()
    try:
        raise RuntimeError(f"failed on {secret}")
    except RuntimeError:
        record = logging.LogRecord(
            "tokens", logging.ERROR, __file__, 1, "Gateway check failed", (), sys.exc_info()
        )

    line = written(record)

    assert secret not in json.dumps(line)
    assert f"RuntimeError: failed on tpk_{MASK}" in line["exception"]


def fast_path_check(application, scheme: str):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/gateway/auth",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if scheme == "https" else "80",
        "HTTP_HOST": "localhost",
        "HTTP_X_FORWARDED_PROTO": scheme,
        "REMOTE_ADDR": "192.0.2.10",
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    started = []
    application(environ, lambda status, headers, exc_info=None: started.append(dict(headers)))
    return started[0]


@pytest.mark.django_db(transaction=True)
def test_the_fast_path_carries_the_policy_and_builds_it_once_per_scheme(settings, monkeypatch):
    settings.SECURE_SSL_REDIRECT = False
    import csp.middleware

    built = []
    build_policy = csp.middleware.build_policy
    monkeypatch.setattr(
        csp.middleware, "build_policy", lambda **parts: built.append(1) or build_policy(**parts)
    )
    application = GatewayFastPath(django_application)

    for scheme in ("http", "https"):
        fast_path_check(application, scheme)
    learnt = len(built)
    answers = [fast_path_check(application, scheme) for scheme in ("http", "https") * 20]

    assert learnt > 0  # the policy is django-csp's, learnt from the outer middleware
    assert len(built) == learnt  # and never built again, whatever the number of answers
    policy = content_security_policy()
    assert all(headers["Content-Security-Policy"] == policy for headers in answers)


def test_every_process_writes_the_same_policy_in_its_declared_order():
    """django-csp orders directives by a set of strings, whose order follows each process's
    string hashing: two servers would send different bytes. The portal's are the same."""
    script = (
        "import django; django.setup(); "
        "from portal.middleware import content_security_policy as p; print(p())"
    )
    written = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed, "DJANGO_SETTINGS_MODULE": "portal.settings"},
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }

    assert written == {content_security_policy()}
    declared = list(settings.CONTENT_SECURITY_POLICY["DIRECTIVES"])
    assert [part.split(" ", 1)[0] for part in content_security_policy().split("; ")] == declared
