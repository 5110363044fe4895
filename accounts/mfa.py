"""Who must use two-factor authentication, and the devices they use."""

import base64
import math

import segno
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import RecoveryCodeDevice
from tokens import conf
from tokens.groups import ADMINISTRATORS, SUPPORT

STAFF_GROUPS = (ADMINISTRATORS, SUPPORT)
TOTP_DEVICE_NAME = "Authenticator app"


def mfa_enabled() -> bool:
    return bool(conf.setting("REQUIRE_MFA"))


def mfa_required(user) -> bool:
    """Whether ``user`` must pass a second factor before any page but the login's.

    With the policy on (``REQUIRE_MFA``), portal administrators, support staff and
    superusers must; so must anyone else who can reach Django admin or holds any
    permission: who can see a token is staff. Whatever the policy (debug mode too), an
    account that has enrolled a device must: its security page says two-factor is on.
    """
    if not getattr(user, "is_authenticated", False):
        return False
    staff = mfa_enabled() and (
        user.is_superuser
        or user.is_staff
        or user.groups.filter(name__in=STAFF_GROUPS).exists()
        or bool(user.get_all_permissions())
    )
    return staff or has_second_factor(user)


def confirmed_totp_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def recovery_device(user) -> RecoveryCodeDevice | None:
    return RecoveryCodeDevice.objects.filter(user=user, confirmed=True).first()


def device_wait(device) -> int | None:
    """Seconds the device's own (django-otp, exponential) throttle still refuses codes;
    None when it takes one."""
    allowed, details = device.verify_is_allowed()
    if allowed:
        return None
    locked_until = (details or {}).get("locked_until")
    if locked_until is None:
        return 1
    return max(1, math.ceil((locked_until - timezone.now()).total_seconds()))


def has_second_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def pending_totp_device(user) -> TOTPDevice:
    """The unconfirmed device of an enrolment in progress (the same one on a reload)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def secret_for_typing(device: TOTPDevice) -> str:
    """The key as authenticator apps ask for it: base32, in groups of four."""
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def qr_code_data_uri(device: TOTPDevice) -> str:
    """The ``otpauth://`` URI as an SVG QR code in a data URI, drawn here (no service)."""
    return segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)


@transaction.atomic
def confirm_enrolment(user, device: TOTPDevice) -> list[str]:
    """Make ``device`` the user's authenticator; returns fresh recovery codes (show once)."""
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return new_recovery_codes(user)


@transaction.atomic
def new_recovery_codes(user) -> list[str]:
    device, _ = RecoveryCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "Recovery codes", "confirmed": True}
    )
    return device.set_new_codes()


def remaining_recovery_codes(user) -> int:
    device = recovery_device(user)
    return device.codes.count() if device else 0


@transaction.atomic
def reset_second_factor(user) -> None:
    """Remove every device: the user enrols again at the next login."""
    TOTPDevice.objects.filter(user=user).delete()
    RecoveryCodeDevice.objects.filter(user=user).delete()
