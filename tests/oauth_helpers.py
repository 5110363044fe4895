"""Helpers shared by the OAuth and gateway tests."""

import base64
from urllib.parse import quote_plus, urlencode

from tests.factories import AppFactory, SubscriptionFactory
from tokens import crypto

FORM = "application/x-www-form-urlencoded"


def make_client(*, plans=(), can_introspect=False, **fields):
    """An app with a known client secret, subscribed to ``plans``; returns (app, secret)."""
    secret = crypto.generate_client_secret()
    app = AppFactory(client_secret=secret, can_introspect=can_introspect, **fields)
    for plan in plans:
        SubscriptionFactory(app=app, plan=plan)
    return app, secret


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def post_form(client, path, params=None, *, auth=None, body=None, **extra):
    """POST a form to ``path`` with the Django test client; ``auth`` = (client_id, secret)."""
    if auth is not None:
        extra["HTTP_AUTHORIZATION"] = basic(*auth)
    data = body if body is not None else urlencode(params or {})
    return client.post(path, data=data, content_type=FORM, **extra)
