import unicodedata

from django import forms
from django.core.exceptions import ValidationError


class OtpCodeForm(forms.Form):
    """A six-digit code from the authenticator app, or (to verify) a recovery code."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )

    def __init__(self, *args, allow_recovery_code=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_recovery_code = allow_recovery_code
        if allow_recovery_code:
            self.fields[
                "code"
            ].help_text = (
                "The 6-digit code your authenticator app shows, or one of your recovery codes."
            )
        else:
            self.fields["code"].label = "Code from the app"

    def clean_code(self):
        code = "".join(self.cleaned_data["code"].split())
        if any(unicodedata.category(ch).startswith("C") for ch in code):
            raise ValidationError("The code holds invisible characters.", code="invalid")
        if not self.allow_recovery_code and not (code.isascii() and code.isdigit()):
            raise ValidationError("Type the 6 digits your app shows.", code="invalid")
        return code

    @property
    def is_totp(self) -> bool:
        code = self.cleaned_data["code"]
        return code.isascii() and code.isdigit() and 6 <= len(code) <= 8
