"""Fixtures of the end-to-end tests; server-starting helpers live in ``servers.py``."""

import pytest


@pytest.fixture(autouse=True)
def _plain_http_on_loopback(monkeypatch):
    # The servers under test speak plain HTTP on loopback; production runs behind TLS.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
