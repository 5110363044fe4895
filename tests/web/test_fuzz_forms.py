"""Every form takes any input: arbitrary, control, huge or missing values only ever give
validation errors, and what a form accepts is what the models can store."""

import unicodedata

import pytest
from django.contrib.auth.forms import AuthenticationForm
from django.http import QueryDict
from hypothesis import given

from accounts.forms import OtpCodeForm
from tests.factories import AppFactory, PlanFactory, SubscriptionFactory, make_token
from tests.fuzzing import FUZZ, hostile_form_data
from tokens.admin import revoke as revoke_admin
from tokens.filters import TokenFilter
from tokens.forms import (
    EXTRA_FIELD_NAME_MAX,
    EXTRA_FIELD_VALUE_MAX,
    OWNER_MAX,
    ApiPlansForm,
    RevokeForm,
    TokenCreateForm,
    TokenEditForm,
    extra_fields_formset,
)
from tokens.models import AccessToken, Api

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform(db):
    plan = PlanFactory(name="Gold")
    PlanFactory(name="Free", api=plan.api)
    app = AppFactory(name="Acme")
    SubscriptionFactory(app=app, plan=plan)
    token, _ = make_token(app=app, plans=[plan])
    return {"plan": plan, "app": app, "token": token}


def no_hidden_characters(text: str) -> bool:
    return not any(
        unicodedata.category(ch) in {"Cc", "Cf", "Cs"} and ch not in "\t\n" for ch in text
    )


def as_query(data: dict) -> QueryDict:
    query = QueryDict(mutable=True)
    for key, value in data.items():
        query[key] = value
    return query


@FUZZ
@given(data=hostile_form_data({"app": "1", "owner": "Ada", "expires_on": "2099-01-01"}))
def test_token_create_form(platform, data):
    data = dict(data, app=data.get("app", str(platform["app"].pk)))
    form = TokenCreateForm(as_query(data))
    if form.is_valid():
        owner = form.cleaned_data["owner"]
        assert 0 < len(owner) <= OWNER_MAX and no_hidden_characters(owner)
        assert form.cleaned_data["app"] == platform["app"]
        form.expires_at()


@FUZZ
@given(data=hostile_form_data({"owner": "Ada", "version": "1"}))
def test_token_edit_form(platform, data):
    form = TokenEditForm(as_query(data))
    if form.is_valid():
        assert 0 < len(form.cleaned_data["owner"]) <= OWNER_MAX
        assert no_hidden_characters(form.cleaned_data["owner"])
        assert form.cleaned_data["version"] >= 1  # any int: only compared, never stored


@FUZZ
@given(data=hostile_form_data({"reason": "leaked"}))
def test_revoke_forms(platform, data):
    for form in (RevokeForm(as_query(data)), revoke_admin.AdminRevokeForm(as_query(data))):
        if form.is_valid():
            assert len(form.cleaned_data["reason"]) <= 500


@FUZZ
@given(
    data=hostile_form_data(
        {
            "extra-TOTAL_FORMS": "2",
            "extra-INITIAL_FORMS": "0",
            "extra-0-name": "Ticket",
            "extra-0-value": "T-1",
            "extra-1-name": "Team",
            "extra-1-value": "Payments",
            "extra-1-DELETE": "on",
        },
        extra_keys=["extra-MAX_NUM_FORMS", "extra-60-name", "extra-0-DELETE"],
    )
)
def test_extra_fields_formset(data):
    formset = extra_fields_formset(as_query(data))
    if formset.is_valid():
        pairs = formset.pairs()
        assert len(pairs) <= 50
        for name, value in pairs:
            assert 0 < len(name) <= EXTRA_FIELD_NAME_MAX and len(value) <= EXTRA_FIELD_VALUE_MAX
            assert no_hidden_characters(name + value)
        assert len({name.casefold() for name, _ in pairs}) == len(pairs)


@FUZZ
@given(data=hostile_form_data({"api_1": "1", "api_2": ""}, extra_keys=["api_999", "api_x"]))
def test_api_plans_form(platform, data):
    apis = Api.objects.prefetch_related("plans")
    form = ApiPlansForm(as_query(data), apis=apis)
    if form.is_valid():
        for plan in form.selected_plans():
            assert plan.api_id in {api.pk for api in apis}
            assert plan.pk in {p.pk for p in plan.api.plans.all()}


@FUZZ
@given(
    data=hostile_form_data(
        {"q": "Ada", "status": "active", "origin": "portal", "o": "-created", "app": "1"},
        extra_keys=[
            "api",
            "plan",
            "created_after",
            "created_before",
            "expires_after",
            "expires_before",
        ],
    )
)
def test_token_filter(platform, data):
    filterset = TokenFilter(as_query(data), queryset=AccessToken.objects.with_list_columns())
    list(filterset.qs[:5])


@FUZZ
@given(data=hostile_form_data({"code": "123456"}))
def test_two_factor_code_form(data):
    for allow in (True, False):
        form = OtpCodeForm(as_query(data), allow_recovery_code=allow)
        if form.is_valid():
            code = form.cleaned_data["code"]
            assert code and len(code) <= 32 and code == "".join(code.split())
            form.is_totp  # noqa: B018


@FUZZ
@given(data=hostile_form_data({"username": "ada", "password": "secret"}))
def test_login_form(platform, data, fast_passwords):
    form = AuthenticationForm(None, as_query(data))
    assert not form.is_valid()  # no such user
