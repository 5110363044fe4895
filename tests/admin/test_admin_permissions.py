"""Who can reach and change what in Django admin.

Support staff: log in, view everything, revoke tokens — nothing else. Superusers manage
APIs, plans and apps. Nobody adds, edits or deletes a token or an audit event in admin.
"""

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.factories import ApiFactory, AppFactory, PlanFactory, UserFactory, make_token
from tokens.models import AccessToken, Api, Plan

pytestmark = pytest.mark.django_db

MODELS = ["accesstoken", "app", "api", "plan", "auditevent"]


@pytest.fixture
def objects():
    plan = PlanFactory()
    app = AppFactory()
    token, _ = make_token(app=app, plans=[plan])
    return {
        "accesstoken": token,
        "app": app,
        "api": plan.api,
        "plan": plan,
        "auditevent": token.events.get(),
    }


def url(model, view, obj=None):
    args = [obj.pk] if obj is not None else []
    return reverse(f"admin:tokens_{model}_{view}", args=args)


def available_actions(response) -> set[str]:
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices}


@pytest.fixture
def support_client(client, support_user):
    client.force_login(support_user)
    return client


# Anonymous and non-staff users.


def test_anonymous_is_sent_to_the_admin_login(client):
    response = client.get(url("accesstoken", "changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_portal_administrators_are_not_staff_and_cannot_enter_admin(client, portal_admin):
    client.force_login(portal_admin)
    response = client.get(url("accesstoken", "changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_a_group_sees_nothing(client, objects):
    client.force_login(UserFactory(is_staff=True))
    assert "have permission to view or edit anything" in client.get("/admin/").text
    for model in MODELS:
        assert client.get(url(model, "changelist")).status_code == 403
    token = objects["accesstoken"]
    assert client.get(url("accesstoken", "revoke", token)).status_code == 403


# Support staff.


def test_support_staff_log_in_and_see_every_token_model(support_client):
    response = support_client.get("/admin/")
    assert response.status_code == 200
    for model in MODELS:
        assert url(model, "changelist") in response.text
    # ... and no other app: users and groups are not theirs.
    assert reverse("admin:auth_user_changelist") not in response.text


@pytest.mark.parametrize("model", MODELS)
def test_support_staff_view_every_list_and_page_read_only(support_client, objects, model):
    assert support_client.get(url(model, "changelist")).status_code == 200
    response = support_client.get(url(model, "change", objects[model]))
    assert response.status_code == 200
    assert 'name="_save"' not in response.text  # a view, not a form
    assert response.context["has_change_permission"] is False


@pytest.mark.parametrize("model", MODELS)
def test_support_staff_cannot_add_or_delete_anything(support_client, objects, model):
    assert support_client.get(url(model, "add")).status_code == 403
    assert support_client.post(url(model, "add"), {}).status_code == 403
    assert support_client.get(url(model, "delete", objects[model])).status_code == 403
    assert (
        support_client.post(url(model, "delete", objects[model]), {"post": "yes"}).status_code
        == 403
    )


def test_support_staff_cannot_change_apis_plans_or_apps(support_client, objects):
    api, plan, app = objects["api"], objects["plan"], objects["app"]
    forged = {
        "api": ({"name": "Hacked", "version": "v1", "base_path": api.base_path}, api),
        "plan": ({"api": api.pk, "name": "Hacked"}, plan),
        "app": ({"name": "Hacked", "is_active": "on"}, app),
    }
    for model, (data, obj) in forged.items():
        assert support_client.post(url(model, "change", obj), data).status_code == 403
        obj.refresh_from_db()
        assert obj.name != "Hacked"


def test_support_staff_cannot_reach_users_or_groups(support_client):
    assert support_client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert support_client.get(reverse("admin:auth_group_changelist")).status_code == 403


def test_support_staff_get_the_revoke_action_and_button_but_no_delete(support_client, objects):
    response = support_client.get(url("accesstoken", "changelist"))
    actions = available_actions(response)
    assert "revoke_selected" in actions
    assert "delete_selected" not in actions
    token = objects["accesstoken"]
    change_page = support_client.get(url("accesstoken", "change", token)).text
    assert url("accesstoken", "revoke", token) in change_page
    assert support_client.get(url("accesstoken", "revoke", token)).status_code == 200


def test_support_staff_cannot_regenerate_an_app_secret(support_client, objects):
    app = objects["app"]
    digest = app.client_secret_digest
    response = support_client.get(url("app", "changelist"))
    assert "regenerate_secret" not in available_actions(response)
    assert (
        url("app", "regenerate_secret", app)
        not in support_client.get(url("app", "change", app)).text
    )
    assert support_client.get(url("app", "regenerate_secret", app)).status_code == 403
    assert support_client.post(url("app", "regenerate_secret", app)).status_code == 403
    response = support_client.post(
        url("app", "changelist"),
        {"action": "regenerate_secret", "_selected_action": [app.pk], "post": "yes"},
    )
    app.refresh_from_db()
    assert app.client_secret_digest == digest


def test_a_forged_revoke_action_without_the_permission_revokes_nothing(client, objects):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_accesstoken"))
    client.force_login(viewer)
    token = objects["accesstoken"]
    response = client.get(url("accesstoken", "changelist"))
    assert response.status_code == 200
    assert "revoke_selected" not in available_actions(response)
    client.post(
        url("accesstoken", "changelist"),
        {"action": "revoke_selected", "_selected_action": [token.pk], "post": "yes", "reason": "x"},
    )
    assert client.get(url("accesstoken", "revoke", token)).status_code == 403
    assert client.post(url("accesstoken", "revoke", token), {"reason": "x"}).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


# Superusers.


def test_superusers_manage_apis_and_plans_and_each_change_is_logged(admin_client, admin_user):
    response = admin_client.post(
        url("api", "add"),
        {
            "name": "Payments",
            "version": "v2",
            "base_path": "/payments",
            "description": "",
            "plans-TOTAL_FORMS": "1",
            "plans-INITIAL_FORMS": "0",
            "plans-0-name": "Gold",
            "plans-0-rate_limit": "100",
            "plans-0-description": "",
        },
    )
    assert response.status_code == 302
    api = Api.objects.get(base_path="/payments")
    assert api.plans.get().name == "Gold"
    entry = LogEntry.objects.get(object_id=str(api.pk), content_type__model="api")
    assert entry.action_flag == ADDITION and entry.user == admin_user

    plan = Plan.objects.get(api=api)
    response = admin_client.post(
        url("plan", "change", plan),
        {"api": api.pk, "name": "Platinum", "rate_limit": "1000", "description": ""},
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.name == "Platinum"
    change = LogEntry.objects.get(object_id=str(plan.pk), content_type__model="plan")
    assert change.action_flag == CHANGE
    assert "Name" in change.get_change_message()


def test_nobody_adds_edits_or_deletes_tokens_in_admin_not_even_a_superuser(admin_client, objects):
    token = objects["accesstoken"]
    assert admin_client.get(url("accesstoken", "add")).status_code == 403
    assert admin_client.get(url("accesstoken", "delete", token)).status_code == 403
    response = admin_client.post(url("accesstoken", "change", token), {"owner": "Mallory"})
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.owner == "Ada Lovelace"
    assert AccessToken.objects.count() == 1
    # Audit events are history: nobody rewrites it.
    event = objects["auditevent"]
    assert admin_client.get(url("auditevent", "delete", event)).status_code == 403
    assert admin_client.post(url("auditevent", "change", event), {}).status_code == 403


def test_superusers_get_a_plan_of_another_api_refused_in_a_subscription(admin_client):
    app = AppFactory()
    plan = PlanFactory()
    other_api = ApiFactory()
    response = admin_client.post(
        url("app", "change", app),
        {
            "name": app.name,
            "is_active": "on",
            "subscription_set-TOTAL_FORMS": "1",
            "subscription_set-INITIAL_FORMS": "0",
            "subscription_set-0-api": other_api.pk,
            "subscription_set-0-plan": plan.pk,
        },
    )
    assert response.status_code == 200
    assert "belongs to" in response.text
    assert not app.subscription_set.exists()
