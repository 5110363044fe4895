"""The permission matrix over every portal URL and method, and the two staff groups.

anonymous → login page; logged in without the permission → 403 (and nothing changes);
permitted → the page (200) or, for a POST that changes something, its redirect.
"""

from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    AppFactory,
    UserFactory,
    extra_fields_data,
    make_token,
    plans_data,
    user_with_perms,
)
from tokens import urls as token_urls
from tokens.models import AccessToken, AuditEvent, Job, JobKind, JobStatus

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def _post_data(name, token):
    if name == "create":
        data = {"app": str(token.app_id), "owner": "New", "nonce": "n", "use_subscriptions": "on"}
        return data | extra_fields_data() | plans_data()
    if name == "edit":
        return {"owner": "Changed", "version": "1"} | extra_fields_data() | plans_data()
    if name in ("revoke", "app_revoke"):
        return {"reason": "because"}
    if name == "bulk_revoke":
        return {"token": str(token.public_id), "reason": "because"}
    if name == "job_resume":
        return {}
    if name == "rotate":
        return {"grace": "1h"}
    if name == "notifications":
        return {"expiring_tokens": "on"}
    return {"q": "Ada"}  # the list's quick search


# (url name, method) → the roles allowed; every other role gets 403 (anonymous: login).
MATRIX = {
    ("list", "get"): {"viewer", "auditor", "support", "admin", "superuser"},
    ("list", "post"): {"viewer", "auditor", "support", "admin", "superuser"},
    ("detail", "get"): {"viewer", "auditor", "support", "admin", "superuser"},
    ("history", "get"): {"auditor", "support", "admin", "superuser"},
    ("revoke", "get"): {"support", "admin", "superuser"},
    ("revoke", "post"): {"support", "admin", "superuser"},
    ("edit", "get"): {"admin", "superuser"},
    ("edit", "post"): {"admin", "superuser"},
    ("create", "get"): {"admin", "superuser"},
    ("create", "post"): {"admin", "superuser"},
    ("bulk_revoke", "get"): {"support", "admin", "superuser"},
    ("bulk_revoke", "post"): {"support", "admin", "superuser"},
    ("app_revoke", "get"): {"support", "admin", "superuser"},
    ("app_revoke", "post"): {"support", "admin", "superuser"},
    ("jobs", "get"): {"viewer", "auditor", "support", "admin", "superuser"},
    ("job", "get"): {"viewer", "auditor", "support", "admin", "superuser"},
    ("job_resume", "post"): {"support", "admin", "superuser"},
    ("rotate", "get"): {"admin", "superuser"},
    ("rotate", "post"): {"admin", "superuser"},
    ("export", "get"): {"viewer", "auditor", "support", "admin", "superuser"},
    # Only whoever the expiry digest goes to (tokens.services.notices).
    ("notifications", "get"): {"admin", "superuser"},
    ("notifications", "post"): {"admin", "superuser"},
}
ROLES = ["anonymous", "nobody", "viewer", "auditor", "support", "admin", "superuser"]
# What a permitted request answers: a page, or a redirect (after a change, or from the
# quick search to the list's shareable address).
PERMITTED_STATUS = {
    ("edit", "post"): 302,
    ("revoke", "post"): 302,
    ("list", "post"): 302,
    ("bulk_revoke", "post"): 302,
    ("app_revoke", "post"): 302,
    ("job_resume", "post"): 302,
    ("notifications", "post"): 302,
}
CHANGES = {
    ("create", "post"),
    ("edit", "post"),
    ("revoke", "post"),
    ("bulk_revoke", "post"),
    ("app_revoke", "post"),
    ("rotate", "post"),
}


def _user(role):
    if role == "anonymous":
        return None
    if role == "nobody":
        return UserFactory(username="nobody")
    if role == "viewer":
        return user_with_perms("tokens.view_accesstoken", username="viewer")
    if role == "auditor":
        return user_with_perms(
            "tokens.view_accesstoken", "tokens.view_auditevent", username="auditor"
        )
    if role == "support":
        return UserFactory(username="support", groups=["Support staff"], is_staff=True)
    if role == "admin":
        return UserFactory(username="admin", groups=["Portal administrators"])
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def _url(name, token):
    if name in ("list", "create", "jobs", "export", "notifications"):
        return reverse(f"tokens:{name}")
    if name == "bulk_revoke":
        return reverse("tokens:bulk_revoke") + f"?token={token.public_id}"
    if name == "app_revoke":
        return reverse("tokens:app_revoke", args=[token.app_id])
    if name in ("job", "job_resume"):
        job = Job.objects.create(
            kind=JobKind.BULK_REVOKE,
            actor_label="someone",
            description="x",
            cutoff=timezone.now(),
            status=JobStatus.DONE,
        )
        return reverse(f"tokens:{name}", args=[job.public_id])
    return reverse(f"tokens:{name}", args=[token.public_id])


def _state():
    return (
        list(AccessToken.objects.order_by("pk").values()),
        AuditEvent.objects.count(),
    )


def test_the_matrix_covers_every_portal_url():
    assert {name for name, _ in MATRIX} == {p.name for p in token_urls.urlpatterns}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method"), sorted(MATRIX))
def test_permission_matrix(role, name, method):
    token, _ = make_token(app=AppFactory())
    client = Client()
    if (user := _user(role)) is not None:
        client.force_login(user)
    url = _url(name, token)
    before = _state()

    response = getattr(client, method)(url, _post_data(name, token) if method == "post" else {})

    if role == "anonymous":
        assert response.status_code == 302
        assert response.url == f"{reverse('login')}?next={quote(url)}"
        assert _state() == before
    elif role in MATRIX[(name, method)]:
        assert response.status_code == PERMITTED_STATUS.get((name, method), 200)
        assert (_state() != before) == ((name, method) in CHANGES)
    else:
        assert response.status_code == 403
        assert "403 — Forbidden" in response.content.decode()
        assert token.owner not in response.content.decode()
        assert _state() == before


@pytest.mark.parametrize("name", ["detail", "edit", "revoke", "history", "rotate"])
def test_an_unknown_token_reveals_nothing_without_permission(name, plain_client, client):
    url = reverse(f"tokens:{name}", args=["00000000-0000-4000-8000-000000000000"])

    assert plain_client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("list", "put"),
        ("list", "delete"),
        ("detail", "post"),
        ("detail", "delete"),
        ("edit", "put"),
        ("edit", "patch"),
        ("edit", "delete"),
        ("revoke", "put"),
        ("revoke", "delete"),
        ("rotate", "put"),
        ("rotate", "delete"),
        ("history", "post"),
        ("create", "put"),
    ],
)
def test_other_methods_are_not_allowed_and_change_nothing(portal_admin_client, name, method):
    token, _ = make_token()
    before = _state()

    response = getattr(portal_admin_client, method)(_url(name, token))

    assert response.status_code == 405
    assert _state() == before


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("create", {"owner": "x", "nonce": "n"} | extra_fields_data()),
        ("edit", {"owner": "Changed", "version": "1"} | extra_fields_data()),
        ("revoke", {"reason": "cross-site"}),
    ],
)
def test_a_cross_site_post_without_the_csrf_token_is_refused(portal_admin, name, data):
    token, _ = make_token()
    data.setdefault("app", str(token.app_id))
    client = Client(enforce_csrf_checks=True)
    client.force_login(portal_admin)
    before = _state()

    response = client.post(_url(name, token), data)

    assert response.status_code == 403
    assert _state() == before


# --- The staff groups -----------------------------------------------------------------------


def _codenames(group_name):
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def test_portal_administrators_may_view_add_change_and_revoke_but_never_delete_tokens():
    perms = _codenames("Portal administrators")

    assert {
        "view_accesstoken",
        "add_accesstoken",
        "change_accesstoken",
        "revoke_accesstoken",
        "view_auditevent",
    } <= perms
    assert not perms & {
        "delete_accesstoken",
        "add_auditevent",
        "change_auditevent",
        "delete_auditevent",
    }


def test_support_staff_may_only_view_and_revoke():
    perms = _codenames("Support staff")

    assert {"view_accesstoken", "view_auditevent", "revoke_accesstoken"} <= perms
    assert all(p.startswith("view_") or p == "revoke_accesstoken" for p in perms)


def test_group_permissions_reach_their_members(portal_admin, support_user):
    assert portal_admin.has_perms(
        ["tokens.view_accesstoken", "tokens.change_accesstoken", "tokens.revoke_accesstoken"]
    )
    assert not portal_admin.has_perm("tokens.delete_accesstoken")
    assert support_user.has_perms(["tokens.view_accesstoken", "tokens.revoke_accesstoken"])
    assert not support_user.has_perm("tokens.change_accesstoken")
    assert not support_user.has_perm("tokens.add_accesstoken")
