"""E-mail notifications (`/tokens/notifications/`): an administrator's opt-in to the
expiring tokens digest, and its record in Django admin."""

import pytest
from django.urls import reverse

from tests.factories import UserFactory
from tokens.models import NotificationSettings
from tokens.services import notices

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

URL = reverse("tokens:notifications")
LABEL = "E-mail me when tokens are about to expire"


def test_the_page_shows_its_title_and_the_unchecked_checkbox(portal_admin_client):
    html = portal_admin_client.get(URL).content.decode()

    assert "<title>E-mail notifications" in html
    assert '<h1 class="h3 mb-3">E-mail notifications</h1>' in html
    assert f'<label class="form-check-label" for="id_expiring_tokens">{LABEL}</label>' in html
    assert 'name="expiring_tokens" id="id_expiring_tokens" aria' in html  # not checked


def test_opting_in_and_out(portal_admin_client, portal_admin):
    response = portal_admin_client.post(URL, {"expiring_tokens": "on"}, follow=True)

    assert response.redirect_chain == [(URL, 302)]
    assert "You will get an e-mail when tokens are about to expire." in response.content.decode()
    assert NotificationSettings.objects.get(user=portal_admin).expiring_tokens is True
    assert " checked" in response.content.decode().split('id="id_expiring_tokens"')[1][:20]
    assert notices.notification_recipients() == [portal_admin.email]

    portal_admin_client.post(URL, {})

    assert NotificationSettings.objects.get(user=portal_admin).expiring_tokens is False
    assert notices.notification_recipients() == []


def test_an_administrator_without_an_email_address_is_warned(client):
    user = UserFactory(username="noaddress", email="", groups=["Portal administrators"])
    client.force_login(user)

    assert "Your account has no e-mail address" in client.get(URL).content.decode()


def test_support_staff_may_not_choose_it(support_client):
    assert support_client.get(URL).status_code == 403
    assert support_client.post(URL, {"expiring_tokens": "on"}).status_code == 403
    assert not NotificationSettings.objects.exists()


def test_notification_settings_are_in_django_admin(client):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    NotificationSettings.objects.create(user=root, expiring_tokens=True)
    client.force_login(root)

    changelist = client.get(reverse("admin:tokens_notificationsettings_changelist"))
    notices_list = client.get(reverse("admin:tokens_expirynotice_changelist"))

    assert changelist.status_code == 200
    assert "root" in changelist.content.decode()
    assert notices_list.status_code == 200
    assert client.get(reverse("admin:tokens_expirynotice_add")).status_code == 403
