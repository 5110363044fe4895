"""Forms of the portal screens. Forms own validation; services own the rules of change."""

import unicodedata
from datetime import datetime, time

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from portal.logs import contains_secret
from tokens import services
from tokens.models import AccessToken, Api, App, Plan

EXTRA_FIELD_NAME_MAX = 100
EXTRA_FIELD_VALUE_MAX = 1000
EXTRA_FIELDS_MAX = 50
OWNER_MAX = AccessToken._meta.get_field("owner").max_length


def _clean_text(value: str, *, label: str, allow: str = "\t", secrets_ok: bool = False) -> str:
    """Refuse control characters (they hide text in logs and pages) and, unless
    ``secrets_ok``, pasted token or client secrets (stored text is shown and audited);
    trim spaces."""
    value = value.strip()
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} and ch not in allow for ch in value):
        raise ValidationError(
            f"{label} contains control or invisible characters.", code="control_chars"
        )
    if not secrets_ok and contains_secret(value):
        raise ValidationError(
            f"{label} contains what looks like a token or client secret; secrets must not "
            "be stored here.",
            code="secret",
        )
    return value


class OwnerField(forms.CharField):
    """A token's owner: required, trimmed, with no hidden characters or pasted secret."""

    def __init__(self, **kwargs):
        super().__init__(label="Owner", max_length=OWNER_MAX, **kwargs)

    def clean(self, value):
        owner = _clean_text(super().clean(value), label="The owner")
        if not owner:
            raise ValidationError("The owner is required.", code="required")
        return owner


class ExtraFieldForm(forms.Form):
    name = forms.CharField(label="Name", max_length=EXTRA_FIELD_NAME_MAX, required=False)
    value = forms.CharField(label="Value", max_length=EXTRA_FIELD_VALUE_MAX, required=False)

    def clean_name(self):
        return _clean_text(self.cleaned_data["name"], label="The name")

    def clean_value(self):
        return _clean_text(self.cleaned_data["value"], label="The value")

    def clean(self):
        cleaned = super().clean()
        name, value = cleaned.get("name"), cleaned.get("value")
        if value and not name:
            self.add_error("name", ValidationError("Give the field a name.", code="required"))
        return cleaned


class BaseExtraFieldFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        seen = set()
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            name = form.cleaned_data.get("name")
            if not name:
                continue
            key = name.casefold()
            if key in seen:
                raise ValidationError(
                    f"The extra field “{name}” appears twice; names must be unique.",
                    code="duplicate",
                )
            seen.add(key)

    def pairs(self) -> list[list[str]]:
        return [
            [form.cleaned_data["name"], form.cleaned_data.get("value", "")]
            for form in self.forms
            if form.cleaned_data.get("name")
            and not (self.can_delete and self._should_delete_form(form))
        ]


ExtraFieldFormSet = forms.formset_factory(
    ExtraFieldForm,
    formset=BaseExtraFieldFormSet,
    extra=1,
    can_delete=True,
    max_num=EXTRA_FIELDS_MAX,
    validate_max=True,
    absolute_max=EXTRA_FIELDS_MAX + 10,
)


def extra_fields_formset(data=None, *, initial_pairs=(), prefix="extra"):
    return ExtraFieldFormSet(
        data, initial=[{"name": n, "value": v} for n, v in initial_pairs], prefix=prefix
    )


class ApiPlansForm(forms.Form):
    """One select per API: "Not associated" or one of that API's plans.

    A choice can only be one of the API's own plans, so a forged request cannot tie a
    plan to another API; adding, changing and removing an association all work without
    JavaScript.
    """

    NOT_ASSOCIATED = ""

    def __init__(self, *args, apis=None, initial_plans=(), **kwargs):
        super().__init__(*args, **kwargs)
        apis = list(apis if apis is not None else Api.objects.prefetch_related("plans"))
        current = {plan.api_id: plan.pk for plan in initial_plans}
        self.plans_by_id = {}
        self.apis = apis
        for api in apis:
            plans = list(api.plans.all())
            for plan in plans:
                plan.api = api
                self.plans_by_id[plan.pk] = plan
            self.fields[self.field_name(api)] = forms.TypedChoiceField(
                label=str(api),
                required=False,
                coerce=int,
                empty_value=None,
                choices=[(self.NOT_ASSOCIATED, "Not associated")]
                + [(plan.pk, plan.name) for plan in plans],
                initial=current.get(api.pk, self.NOT_ASSOCIATED),
            )
            self.fields[self.field_name(api)].api = api

    @staticmethod
    def field_name(api) -> str:
        return f"api_{api.pk}"

    def api_rows(self):
        return [(api, self[self.field_name(api)]) for api in self.apis]

    def selected_plans(self) -> list[Plan]:
        return [
            self.plans_by_id[plan_id]
            for api in self.apis
            if (plan_id := self.cleaned_data.get(self.field_name(api))) is not None
        ]


class TokenEditForm(forms.Form):
    """Basic info of the Edit screen: the only editable field is the Owner.

    ``version`` is the token version the form was opened on (optimistic locking).
    """

    owner = OwnerField()
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class TokenCreateForm(forms.Form):
    app = forms.ModelChoiceField(
        label="App", queryset=App.objects.filter(is_active=True), empty_label="Choose an app"
    )
    owner = OwnerField()
    expires_on = forms.DateField(
        label="Expires",
        required=False,
        help_text="Optional. The token stops working at the end of this day (UTC).",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_expires_on(self):
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        if day < timezone.localdate():
            raise ValidationError("The expiry date must not be in the past.", code="past")
        return day

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return timezone.make_aware(datetime.combine(day, time.max.replace(microsecond=0)))


class RevokeForm(forms.Form):
    """The reason of a revoke. Whether one is required is the service's rule
    (``services.revoke_reason_required``), asked here so the form says so up front."""

    channel = services.RevokeChannel.PORTAL
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept in the token's history.",
    )

    def __init__(self, *args, revoking: bool = True, **kwargs):
        """``revoking``: whether any token will be revoked (only purging already revoked
        tokens again asks no reason)."""
        super().__init__(*args, **kwargs)
        reason = self.fields["reason"]
        reason.required = revoking and services.revoke_reason_required(self.channel)
        if not reason.required:
            reason.label = "Reason (optional)"

    def clean_reason(self):
        # A textarea: its line breaks (CRLF from browsers) are text, not hidden characters.
        reason = self.cleaned_data["reason"].replace("\r\n", "\n")
        # A pasted leaked token is welcome here: the revoke service masks it.
        return _clean_text(reason, label="The reason", allow="\t\n", secrets_ok=True)


class AppRevokeForm(RevokeForm):
    """An app's "Revoke all tokens": the reason, and whether to give it a new secret."""

    channel = services.RevokeChannel.INCIDENT

    regenerate_secret = forms.BooleanField(
        label="Also regenerate the client secret",
        required=False,
        initial=True,
        help_text="The old secret stops working at once; the new one is shown once. Tokens "
        "cannot be issued with the leaked secret while the tokens are being revoked.",
    )
