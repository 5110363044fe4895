"""Recovery codes (a django-otp device storing only salted digests) and tracked sessions."""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin

# No 0/o, 1/l/i: codes are read off paper. 31 symbols ** 16 ≈ 2 ** 79.
RECOVERY_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 16
RECOVERY_CODE_COUNT = 10


def _new_salt() -> str:
    return secrets.token_hex(16)


def normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch not in " -\t")


def format_recovery_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


class RecoveryCodeDevice(TimestampMixin, ThrottlingMixin, Device):
    """A user's set of single-use recovery codes, shown once and stored as salted digests.

    django-otp's static device stores its codes in clear text; these are HMAC-SHA256
    digests under a per-device random salt, so a database dump gives nothing away.
    """

    salt = models.CharField(max_length=64, default=_new_salt, editable=False)

    class Meta(Device.Meta):
        verbose_name = "recovery codes"
        verbose_name_plural = "recovery codes"

    def code_digest(self, code: str) -> str:
        return hmac.new(
            self.salt.encode(), normalise_recovery_code(code).encode(), hashlib.sha256
        ).hexdigest()

    def set_new_codes(self) -> list[str]:
        """Replace every code with fresh ones; returns them (formatted) to show once."""
        codes = [
            "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
            for _ in range(RECOVERY_CODE_COUNT)
        ]
        self.codes.all().delete()
        RecoveryCode.objects.bulk_create(
            RecoveryCode(device=self, digest=self.code_digest(code)) for code in codes
        )
        return [format_recovery_code(code) for code in codes]

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        code = normalise_recovery_code(str(token))
        used = 0
        if len(code) == RECOVERY_CODE_LENGTH and all(c in RECOVERY_CODE_ALPHABET for c in code):
            # Deleting is the use: of two concurrent requests with one code, one wins.
            used, _ = self.codes.filter(digest=self.code_digest(code)).delete()
        if used:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment(commit=True)
        return False

    def get_throttle_factor(self):
        return getattr(settings, "OTP_RECOVERY_THROTTLE_FACTOR", 1)


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "digest"], name="recovery_code_unique")
        ]

    def __str__(self):
        return f"recovery code of {self.device.user}"


class UserSession(models.Model):
    """Which sessions belong to which user, so an administrator can end them all."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"session of {self.user} since {self.created_at:%Y-%m-%d %H:%M}"
