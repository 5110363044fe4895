"""manage.py create_support_user: a user who can log into admin, look tokens up, revoke them."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long support passphrase 42"


def test_creates_a_staff_member_of_the_support_group(client):
    call_command(
        "create_support_user", "sam", "--password", PASSWORD, "--email", "sam@example.test"
    )
    user = get_user_model().objects.get(username="sam")
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["Support staff"]
    assert user.email == "sam@example.test"
    assert user.has_perm("tokens.revoke_accesstoken")
    assert not user.has_perm("tokens.change_accesstoken")
    # ... and can log into admin with that password and reach the tokens.
    assert client.login(username="sam", password=PASSWORD)
    assert client.get(reverse("admin:tokens_accesstoken_changelist")).status_code == 200


def test_takes_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPPORT_PASSWORD", PASSWORD)
    call_command("create_support_user", "sam", "--no-input")
    assert get_user_model().objects.get(username="sam").check_password(PASSWORD)


def test_prompts_for_the_password_twice(monkeypatch):
    answers = iter(["mismatch one", "mismatch two", PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    call_command("create_support_user", "sam")
    assert get_user_model().objects.get(username="sam").check_password(PASSWORD)


def test_without_a_password_and_without_input_it_fails():
    with pytest.raises(CommandError, match="password"):
        call_command("create_support_user", "sam", "--no-input")
    assert not get_user_model().objects.filter(username="sam").exists()


def test_refuses_a_weak_password_and_an_existing_user():
    with pytest.raises(CommandError, match="refused"):
        call_command("create_support_user", "sam", "--password", "123")
    UserFactory(username="taken")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_support_user", "taken", "--password", PASSWORD)
