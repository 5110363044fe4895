import os

import pytest

from tests.factories import UserFactory

# Real-browser fixtures (chromium, browser_page, nojs_page) for tests/e2e.
pytest_plugins = ["tests.e2e.browser"]


def _clear() -> None:
    from django.core.cache import caches

    cache = caches["default"]
    tier = getattr(cache, "_tier", None)  # Redis's local tier (portal/redis_cache.py)
    if tier is None:
        cache.clear()
        return
    # This process holds the only local tier on this cache's channel (end-to-end servers
    # use key prefixes of their own): dropping it is the whole purge, with no need to wait
    # for other processes to apply it.
    super(type(cache), cache).clear()
    tier.drop()


@pytest.fixture(autouse=True)
def _clear_cache():
    from tokens import ratelimit
    from tokens.gateway import last_used

    _clear()
    ratelimit.forget()
    last_used.forget()  # each test starts after a quiet second: a first use is written
    yield
    last_used.forget()  # never written at exit into a database that is gone
    _clear()


@pytest.fixture
def needs_postgresql():
    """Skips a PostgreSQL-only test on SQLite, with the reason; fails it if DATABASE_URL
    names PostgreSQL but the tests do not run on it."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.fail("DATABASE_URL names PostgreSQL but the tests do not run on it")
    pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://…)")


@pytest.fixture
def portal_admin(db):
    """A member of the Portal administrators group (not a superuser)."""
    return UserFactory(username="admin-ada", groups=["Portal administrators"])


@pytest.fixture
def support_user(db):
    return UserFactory(username="support-sam", groups=["Support staff"], is_staff=True)


@pytest.fixture
def plain_user(db):
    """Logged in, but with no permission at all."""
    return UserFactory(username="plain-pat")


@pytest.fixture
def portal_admin_client(client, portal_admin):
    client.force_login(portal_admin)
    return client


@pytest.fixture
def support_client(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def plain_client(client, plain_user):
    client.force_login(plain_user)
    return client


@pytest.fixture
def fast_passwords(settings):
    """Users made in a test need no slow password hash (for modules that use many users)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def hostile_token(db):
    """A token whose every free-text field tries to break out of the page."""
    from tests.factories import XSS, AppFactory, api_with_plans, make_token

    _, (plan,) = api_with_plans(f"Plan {XSS}", name=f"API {XSS}")
    return make_token(
        app=AppFactory(name=f"App {XSS}"),
        owner=f"Owner {XSS}",
        plans=[plan],
        extra_fields=[[f"Name {XSS}", f"Value {XSS}"]],
    )
