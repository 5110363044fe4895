"""Forms own validation: bad input is a clear form error, never an exception."""

from datetime import date, datetime, time, timedelta

import pytest
from django.utils import timezone

from tests.factories import AppFactory, api_with_plans, extra_fields_data, plans_data
from tokens.forms import (
    ApiPlansForm,
    RevokeForm,
    TokenCreateForm,
    TokenEditForm,
    extra_fields_formset,
)
from tokens.models import Api

pytestmark = pytest.mark.django_db


def _bound_formset(pairs, **kwargs):
    formset = extra_fields_formset(extra_fields_data(pairs, **kwargs))
    formset.is_valid()
    return formset


def _all_errors(formset) -> str:
    return " ".join(
        [str(e) for e in formset.non_form_errors()] + [str(f.errors) for f in formset.forms]
    )


# --- Extra Fields ---------------------------------------------------------------------------


def test_extra_fields_keep_their_order_trimmed_and_skip_blank_rows():
    formset = _bound_formset([(" Zeta ", " 1 "), ("", ""), ("Alpha", "two words")])

    assert formset.is_valid()
    assert formset.pairs() == [["Zeta", "1"], ["Alpha", "two words"]]


def test_extra_field_with_a_name_and_no_value_is_kept():
    formset = _bound_formset([("Flag", "")])

    assert formset.is_valid()
    assert formset.pairs() == [["Flag", ""]]


def test_extra_field_value_without_a_name_is_refused():
    formset = _bound_formset([("", "orphan value")])

    assert not formset.is_valid()
    assert "Give the field a name." in _all_errors(formset)


def test_extra_field_names_must_be_unique_ignoring_case():
    formset = _bound_formset([("Ticket", "1"), ("TICKET", "2")])

    assert not formset.is_valid()
    assert "appears twice" in _all_errors(formset)


def test_a_removed_row_does_not_count_as_a_duplicate_and_is_dropped():
    formset = _bound_formset([("Ticket", "1"), ("Ticket", "2")], initial=2, delete=[0])

    assert formset.is_valid()
    assert formset.pairs() == [["Ticket", "2"]]


@pytest.mark.parametrize(
    "bad",
    [
        "bell\x07",
        "escape\x1b[31m",
        "zero\u200bwidth",
        "rtl\u202eoverride",
        "line\nbreak",
        "nul\x00",
    ],
)
def test_extra_fields_refuse_control_and_invisible_characters(bad):
    for pair in [(bad, "value"), ("Name", bad)]:
        formset = _bound_formset([pair])
        assert not formset.is_valid(), pair
        assert formset.forms[0].errors


def test_extra_field_value_may_contain_a_tab_and_unicode():
    formset = _bound_formset([("Région", "São Paulo\tCentro 🚀")])

    assert formset.is_valid()
    assert formset.pairs() == [["Région", "São Paulo\tCentro 🚀"]]


def test_extra_field_name_and_value_have_length_limits():
    too_long_name = _bound_formset([("n" * 101, "v")])
    too_long_value = _bound_formset([("n", "v" * 1001)])
    at_limits = _bound_formset([("n" * 100, "v" * 1000)])

    assert not too_long_name.is_valid()
    assert not too_long_value.is_valid()
    assert at_limits.is_valid()


def test_more_than_fifty_extra_fields_are_refused():
    formset = _bound_formset([(f"f{i}", "v") for i in range(51)])

    assert not formset.is_valid()
    assert formset.non_form_errors()


def test_a_forged_huge_form_count_is_a_form_error_not_a_crash():
    data = extra_fields_data([("a", "b")])
    data["extra-TOTAL_FORMS"] = "100000"

    formset = extra_fields_formset(data)

    assert not formset.is_valid()
    assert len(formset.forms) <= 60
    assert formset.non_form_errors()


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda d: d.pop("extra-TOTAL_FORMS"), id="missing-total"),
        pytest.param(lambda d: d.update({"extra-TOTAL_FORMS": "abc"}), id="total-not-a-number"),
        pytest.param(lambda d: d.clear(), id="no-management-form"),
    ],
)
def test_a_tampered_management_form_is_a_form_error(mangle):
    data = extra_fields_data([("a", "b")])
    mangle(data)

    formset = extra_fields_formset(data)

    assert not formset.is_valid()
    assert formset.non_form_errors()


def test_unbound_formset_shows_the_current_pairs_plus_one_empty_row():
    formset = extra_fields_formset(initial_pairs=[("Env", "prod")])

    assert [f.initial for f in formset.forms[:1]] == [{"name": "Env", "value": "prod"}]
    assert len(formset.forms) == 2


# --- APIs and Plans -------------------------------------------------------------------------


def test_plans_form_offers_each_api_with_its_own_plans_only():
    pay, (free, gold) = api_with_plans("Free", "Gold")
    orders, (basic,) = api_with_plans("Basic")

    form = ApiPlansForm(apis=Api.objects.prefetch_related("plans"))

    choices = {api.pk: [c[0] for c in field.field.choices] for api, field in form.api_rows()}
    assert choices == {pay.pk: ["", free.pk, gold.pk], orders.pk: ["", basic.pk]}


def test_plans_form_selects_the_chosen_plans_and_skips_not_associated():
    _, (free, gold) = api_with_plans("Free", "Gold")
    _, (basic,) = api_with_plans("Basic")

    form = ApiPlansForm(plans_data([gold]), apis=Api.objects.prefetch_related("plans"))

    assert form.is_valid()
    assert form.selected_plans() == [gold]


def test_plans_form_refuses_a_plan_of_another_api():
    pay, _ = api_with_plans("Free")
    _, (foreign,) = api_with_plans("Gold")
    data = plans_data()
    data[f"api_{pay.pk}"] = str(foreign.pk)

    form = ApiPlansForm(data, apis=Api.objects.prefetch_related("plans"))

    assert not form.is_valid()
    assert f"api_{pay.pk}" in form.errors


@pytest.mark.parametrize("value", ["abc", "999999", "1.5", "-1"])
def test_plans_form_refuses_garbage_plan_ids(value):
    pay, _ = api_with_plans("Free")

    form = ApiPlansForm({f"api_{pay.pk}": value}, apis=Api.objects.prefetch_related("plans"))

    assert not form.is_valid()


def test_plans_form_starts_from_the_current_plans():
    pay, (free, gold) = api_with_plans("Free", "Gold")

    form = ApiPlansForm(apis=Api.objects.prefetch_related("plans"), initial_plans=[gold])

    assert form[f"api_{pay.pk}"].value() == gold.pk


# --- Owner and version ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        ("", "required"),
        ("    ", "required"),
        ("x" * 201, "at most 200"),
        ("Ada\x00", "Null characters"),
        ("Ada\u200b", "control or invisible"),
        ("Ada\nLovelace", "control or invisible"),
    ],
)
def test_owner_must_be_present_printable_and_short(owner, message):
    for form in (
        TokenEditForm({"owner": owner, "version": "1"}),
        TokenCreateForm({"owner": owner, "app": AppFactory().pk}),
    ):
        assert not form.is_valid()
        assert message in str(form.errors["owner"])


def test_owner_is_trimmed():
    form = TokenEditForm({"owner": "  Ada Lovelace  ", "version": "3"})

    assert form.is_valid()
    assert form.cleaned_data == {"owner": "Ada Lovelace", "version": 3}


@pytest.mark.parametrize("version", ["", "0", "-2", "abc", "1e3"])
def test_edit_form_needs_the_version_it_was_opened_on(version):
    form = TokenEditForm({"owner": "Ada", "version": version})

    assert not form.is_valid()
    assert "version" in form.errors


# --- New access token -----------------------------------------------------------------------


def test_create_form_refuses_an_inactive_app():
    app = AppFactory(is_active=False)

    form = TokenCreateForm({"app": app.pk, "owner": "Ada"})

    assert not form.is_valid()
    assert "app" in form.errors


@pytest.mark.parametrize("app_value", ["abc", "999999", ""])
def test_create_form_refuses_a_missing_or_unknown_app(app_value):
    form = TokenCreateForm({"app": app_value, "owner": "Ada"})

    assert not form.is_valid()
    assert "app" in form.errors


def test_create_form_refuses_an_expiry_in_the_past():
    yesterday = timezone.localdate() - timedelta(days=1)

    form = TokenCreateForm({"app": AppFactory().pk, "owner": "Ada", "expires_on": yesterday})

    assert not form.is_valid()
    assert "must not be in the past" in str(form.errors["expires_on"])


@pytest.mark.parametrize("value", ["2026-02-30", "tomorrow", "31/12/2099", "99999-01-01"])
def test_create_form_refuses_a_malformed_expiry(value):
    form = TokenCreateForm({"app": AppFactory().pk, "owner": "Ada", "expires_on": value})

    assert not form.is_valid()
    assert "expires_on" in form.errors


def test_create_form_expiry_is_the_end_of_the_chosen_day():
    day = timezone.localdate() + timedelta(days=10)
    form = TokenCreateForm({"app": AppFactory().pk, "owner": "Ada", "expires_on": day.isoformat()})

    assert form.is_valid(), form.errors
    expires_at = form.expires_at()
    assert timezone.is_aware(expires_at)
    assert timezone.localtime(expires_at).date() == day
    assert timezone.localtime(expires_at).time() == time(23, 59, 59)


def test_create_form_expiry_today_is_allowed_and_optional():
    app = AppFactory()
    today = TokenCreateForm({"app": app.pk, "owner": "Ada", "expires_on": timezone.localdate()})
    never = TokenCreateForm({"app": app.pk, "owner": "Ada"})

    assert today.is_valid()
    assert today.expires_at() > timezone.now()
    assert never.is_valid()
    assert never.expires_at() is None


def test_create_form_accepts_a_far_future_expiry():
    form = TokenCreateForm({"app": AppFactory().pk, "owner": "Ada", "expires_on": "9999-12-31"})

    assert form.is_valid()
    assert form.expires_at() == timezone.make_aware(
        datetime.combine(date(9999, 12, 31), time(23, 59, 59))
    )


# --- Revoke ---------------------------------------------------------------------------------


def test_revoke_reason_is_optional_and_trimmed():
    assert RevokeForm({}).is_valid()
    form = RevokeForm({"reason": "  Leaked  "})
    assert form.is_valid()
    assert form.cleaned_data["reason"] == "Leaked"


def test_revoke_reason_may_span_several_lines():
    # A textarea: a browser sends its line breaks as CRLF.
    form = RevokeForm({"reason": "Leaked in a public repo.\r\nRotated the client secret."})

    assert form.is_valid(), form.errors
    assert "Rotated the client secret." in form.cleaned_data["reason"]
    assert "\r" not in form.cleaned_data["reason"]


@pytest.mark.parametrize("reason", ["x" * 501, "hidden\x1b[2Jtext", "zero\u200bwidth", "nul\x00"])
def test_revoke_reason_refuses_overlong_or_hidden_text(reason):
    form = RevokeForm({"reason": reason})

    assert not form.is_valid()
    assert "reason" in form.errors
