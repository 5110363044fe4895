import pytest

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin_user(db):
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
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client
