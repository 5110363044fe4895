"""Two-factor authentication for staff: enforcement, enrolment, verification, recovery codes."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from accounts.models import RecoveryCode, RecoveryCodeDevice, UserSession
from tests.factories import UserFactory, user_with_perms

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def mfa_on(settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "REQUIRE_MFA": True}
    return settings


@pytest.fixture
def no_device_backoff(settings):
    """Without django-otp's per-device exponential delay (tested on its own below)."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_RECOVERY_THROTTLE_FACTOR = 0


def code_for(device, offset=0) -> str:
    device.refresh_from_db()
    return (
        f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + offset):06d}"
    )


def enrolled(user) -> tuple[TOTPDevice, list[str]]:
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return device, mfa.new_recovery_codes(user)


def log_in(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return response


# --- who must use it ------------------------------------------------------------------


def test_policy_covers_staff_groups_superusers_and_permission_holders(mfa_on):
    assert mfa.mfa_required(UserFactory(groups=["Portal administrators"]))
    assert mfa.mfa_required(UserFactory(groups=["Support staff"], is_staff=True))
    assert mfa.mfa_required(UserFactory(is_superuser=True))
    assert mfa.mfa_required(UserFactory(is_staff=True))
    assert mfa.mfa_required(user_with_perms("tokens.view_accesstoken"))
    assert not mfa.mfa_required(UserFactory())


def test_off_by_default_in_debug_and_tests(portal_admin_client):
    assert not mfa.mfa_enabled()
    assert portal_admin_client.get(reverse("tokens:list")).status_code == 200


def test_portal_administrator_without_a_device_is_sent_to_enrolment(mfa_on, client, portal_admin):
    log_in(client, portal_admin)
    response = client.get(reverse("tokens:list"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('mfa-setup')}?next=/tokens/"


def test_enrolled_user_must_verify_before_any_portal_page(mfa_on, client, portal_admin):
    enrolled(portal_admin)
    log_in(client, portal_admin)
    for url in (reverse("tokens:list"), reverse("tokens:create"), reverse("account-security")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("mfa-verify") + "?next=")
    # Enrolling a second device with the password alone is refused as well.
    response = client.get(reverse("mfa-setup"))
    assert response["Location"].startswith(reverse("mfa-verify"))


def test_django_admin_requires_the_second_factor_too(mfa_on, client, support_user):
    enrolled(support_user)
    log_in(client, support_user)
    response = client.get(reverse("admin:tokens_accesstoken_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa-verify"))


def test_admin_login_goes_through_the_portal_login(client):
    response = client.get("/admin/login/?next=/admin/tokens/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/admin/tokens/"


def test_force_logged_in_superuser_is_redirected_from_admin(mfa_on, client):
    root = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(root)
    response = client.get(reverse("admin:index"))
    assert response["Location"].startswith(reverse("mfa-setup"))


def test_user_without_permissions_is_not_asked(mfa_on, client, plain_user):
    log_in(client, plain_user)
    assert client.get(reverse("tokens:list")).status_code == 403


def test_unverified_user_can_still_log_out(mfa_on, client, portal_admin):
    enrolled(portal_admin)
    log_in(client, portal_admin)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("tokens:list"))["Location"].startswith(reverse("login"))


def test_machine_endpoints_are_not_redirected(mfa_on, client, portal_admin):
    enrolled(portal_admin)
    log_in(client, portal_admin)
    response = client.post("/oauth/token/", "", content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 401)


# --- enrolment --------------------------------------------------------------------------


def test_enrolment_shows_a_qr_code_and_the_key_then_gives_recovery_codes_once(
    mfa_on, client, portal_admin
):
    log_in(client, portal_admin)
    page = client.get(reverse("mfa-setup") + "?next=/tokens/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="data:image/svg+xml' in html
    device = TOTPDevice.objects.get(user=portal_admin, confirmed=False)
    assert mfa.secret_for_typing(device) in html

    wrong = client.post(
        reverse("mfa-setup"), {"code": "000000" if code_for(device) != "000000" else "111111"}
    )
    assert wrong.status_code == 200
    assert "not valid" in wrong.content.decode()
    device.refresh_from_db()
    assert not device.confirmed

    device.throttle_reset()
    done = client.post(reverse("mfa-setup"), {"code": code_for(device), "next": "/tokens/"})
    assert done.status_code == 200
    codes = re.findall(
        r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}\b", done.content.decode()
    )
    assert len(set(codes)) == 10
    assert "no-store" in done["Cache-Control"]
    device.refresh_from_db()
    assert device.confirmed
    # Stored as salted digests only.
    stored = list(RecoveryCode.objects.values_list("digest", flat=True))
    assert len(stored) == 10
    assert not any(code.replace("-", "") in digest for code in codes for digest in stored)
    # The session passed the second factor: the portal opens.
    assert client.get(reverse("tokens:list")).status_code == 200
    # And the codes are never shown again.
    assert codes[0] not in client.get(reverse("account-security")).content.decode()


def test_enrolment_code_must_be_digits(mfa_on, client, portal_admin):
    log_in(client, portal_admin)
    client.get(reverse("mfa-setup"))
    response = client.post(reverse("mfa-setup"), {"code": "abcd-efgh-jkmn-pqrs"})
    assert response.status_code == 200
    assert not TOTPDevice.objects.filter(user=portal_admin, confirmed=True).exists()


# --- verification -----------------------------------------------------------------------


def test_verify_with_the_app_code_then_reach_the_page_asked_for(mfa_on, client, portal_admin):
    device, _ = enrolled(portal_admin)
    log_in(client, portal_admin)
    before = client.session.session_key
    response = client.post(
        reverse("mfa-verify"), {"code": code_for(device), "next": "/tokens/new/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/tokens/new/"
    assert client.session.session_key != before  # a new session key after the second factor
    assert UserSession.objects.filter(session_key=client.session.session_key).exists()
    assert client.get(reverse("tokens:create")).status_code == 200


def test_verify_refuses_an_offsite_next(mfa_on, client, portal_admin):
    device, _ = enrolled(portal_admin)
    log_in(client, portal_admin)
    response = client.post(
        reverse("mfa-verify"), {"code": code_for(device), "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("tokens:list")


def test_a_totp_code_works_once(mfa_on, client, portal_admin, no_device_backoff):
    device, _ = enrolled(portal_admin)
    code = code_for(device)
    log_in(client, portal_admin)
    assert client.post(reverse("mfa-verify"), {"code": code}).status_code == 302
    other = Client()
    log_in(other, portal_admin)
    response = other.post(reverse("mfa-verify"), {"code": code})
    assert response.status_code == 200
    assert "not valid" in response.content.decode()


def test_recovery_codes_work_once_each(mfa_on, client, portal_admin, no_device_backoff):
    _, codes = enrolled(portal_admin)
    log_in(client, portal_admin)
    response = client.post(reverse("mfa-verify"), {"code": codes[0].upper()})
    assert response.status_code == 302
    assert client.get(reverse("tokens:list")).status_code == 200
    assert RecoveryCode.objects.count() == 9

    other = Client()
    log_in(other, portal_admin)
    reused = other.post(reverse("mfa-verify"), {"code": codes[0]})
    assert reused.status_code == 200
    assert "not valid" in reused.content.decode()
    assert (
        other.post(reverse("mfa-verify"), {"code": codes[1].replace("-", " ")}).status_code == 302
    )


def test_new_recovery_codes_replace_the_old_ones(mfa_on, client, portal_admin, no_device_backoff):
    device, old = enrolled(portal_admin)
    log_in(client, portal_admin)
    client.post(reverse("mfa-verify"), {"code": code_for(device)})
    response = client.post(reverse("recovery-codes"))  # after its confirmation page
    assert response.status_code == 200
    new = re.findall(
        r"<li[^>]*>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", response.text
    )
    assert len(new) == 10 and not set(new) & set(old)
    recovery = RecoveryCodeDevice.objects.get(user=portal_admin)
    assert not recovery.verify_token(old[0])
    recovery.throttle_reset()
    assert recovery.verify_token(new[0])


def test_bad_codes_are_throttled_per_account(mfa_on, client, portal_admin, no_device_backoff):
    device, _ = enrolled(portal_admin)
    log_in(client, portal_admin)
    good = code_for(device)
    bad = "000000" if good != "000000" else "111111"
    for _ in range(5):
        assert client.post(reverse("mfa-verify"), {"code": bad}).status_code == 200
    response = client.post(reverse("mfa-verify"), {"code": good})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    # Another session of the same account is throttled as well.
    other = Client()
    log_in(other, portal_admin)
    assert other.post(reverse("mfa-verify"), {"code": good}).status_code == 429


def test_the_device_backs_off_after_a_failure(mfa_on, client, portal_admin):
    device, _ = enrolled(portal_admin)
    log_in(client, portal_admin)
    good = code_for(device)
    client.post(reverse("mfa-verify"), {"code": "000000" if good != "000000" else "111111"})
    response = client.post(reverse("mfa-verify"), {"code": good})
    assert response.status_code == 429
    assert response["Retry-After"] == "1"


def test_security_events_are_logged_without_codes(mfa_on, client, portal_admin, caplog):
    device, codes = enrolled(portal_admin)
    log_in(client, portal_admin)
    caplog.set_level("INFO", logger="portal.middleware")
    client.post(reverse("mfa-verify"), {"code": codes[0]})
    events = [r.security["event"] for r in caplog.records if hasattr(r, "security")]
    assert "authn_mfa_success" in events and "authn_mfa_recovery_code_used" in events
    assert codes[0] not in caplog.text and codes[0].replace("-", "") not in caplog.text


# --- administrators end sessions and reset devices ---------------------------------------


@pytest.fixture
def superuser_client():
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    return client


def test_an_administrator_ends_a_users_sessions(superuser_client, portal_admin):
    laptop, phone = Client(), Client()
    log_in(laptop, portal_admin)
    log_in(phone, portal_admin)
    assert laptop.get(reverse("tokens:list")).status_code == 200
    response = superuser_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "end_sessions", "_selected_action": [portal_admin.pk]},
    )
    assert response.status_code == 302
    for client in (laptop, phone):
        assert client.get(reverse("tokens:list"))["Location"].startswith(reverse("login"))
    assert not UserSession.objects.filter(user=portal_admin).exists()


@pytest.mark.parametrize("action", ["end_sessions", "reset_two_factor"])
def test_an_administrator_who_ends_their_own_sessions_is_logged_out_cleanly(
    superuser_client, portal_admin, action
):
    root = get_user_model().objects.get(username="root")
    laptop = Client()
    log_in(laptop, portal_admin)
    response = superuser_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": action, "_selected_action": [root.pk, portal_admin.pk]},
    )
    # Not a 400 for the session Django could no longer save: logged out, to the login page.
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:login")
    assert not UserSession.objects.filter(user__in=[root, portal_admin]).exists()
    after = superuser_client.get(reverse("admin:auth_user_changelist"))
    assert after.status_code == 302 and reverse("admin:index") != after["Location"]
    assert laptop.get(reverse("tokens:list"))["Location"].startswith(reverse("login"))
    page = superuser_client.get(response["Location"], follow=True)
    assert "user(s)" in page.content.decode()


def test_an_administrator_resets_a_lost_authenticator(superuser_client, portal_admin, settings):
    enrolled(portal_admin)
    superuser_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "reset_two_factor", "_selected_action": [portal_admin.pk]},
    )
    assert not TOTPDevice.objects.filter(user=portal_admin).exists()
    assert not RecoveryCodeDevice.objects.filter(user=portal_admin).exists()
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "REQUIRE_MFA": True}
    client = Client()
    log_in(client, portal_admin)
    assert client.get(reverse("tokens:list"))["Location"].startswith(reverse("mfa-setup"))


def test_user_admin_shows_two_factor_and_sessions_without_totp_keys(superuser_client, portal_admin):
    device, _ = enrolled(portal_admin)
    response = superuser_client.get(reverse("admin:auth_user_changelist"))
    assert response.status_code == 200
    assert device.key not in response.content.decode()
    assert superuser_client.get("/admin/otp_totp/totpdevice/").status_code == 404


def test_an_enrolled_account_is_asked_for_a_code_with_the_policy_off(client, portal_admin):
    """Debug mode (REQUIRE_MFA off): the security page of an enrolled administrator says
    two-factor is on, so the password alone must not let them in."""
    assert not mfa.mfa_enabled()
    device, _ = enrolled(portal_admin)
    log_in(client, portal_admin)

    refused = client.get(reverse("tokens:list"))

    assert refused.status_code == 302
    assert refused["Location"].startswith(reverse("mfa-verify") + "?next=")
    verified = client.post(reverse("mfa-verify") + "?next=/tokens/", {"code": code_for(device)})
    assert verified.status_code == 302
    assert client.get(reverse("tokens:list")).status_code == 200


def test_without_a_device_the_policy_off_asks_for_nothing(client, portal_admin):
    log_in(client, portal_admin)
    assert client.get(reverse("tokens:list")).status_code == 200


def test_before_the_second_factor_the_navbar_links_to_no_page_it_would_refuse(client, portal_admin):
    enrolled(portal_admin)
    log_in(client, portal_admin)

    page = client.get(reverse("mfa-verify")).content.decode()

    assert f'href="{reverse("tokens:jobs")}"' not in page
    assert ">Access Tokens</a>" not in page
    assert "Log out" in page
