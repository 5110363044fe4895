"""Django admin: an app's "Revoke all tokens" (action and button), OAuth tokens included,
with a new client secret when asked; jobs listed read-only."""

import re

import pytest
from django.urls import reverse

from tests.factories import AppFactory, make_token
from tokens.models import AccessToken, Job, JobKind, TokenOrigin

pytestmark = pytest.mark.django_db


def test_the_app_page_has_the_button_and_its_confirmation_counts_every_origin(admin_client):
    app = AppFactory(name="Leaky")
    make_token(app=app)
    make_token(app=app, origin=TokenOrigin.OAUTH)
    make_token(app=app, revoked=True)
    page = admin_client.get(reverse("admin:tokens_app_change", args=[app.pk])).text
    url = reverse("admin:tokens_app_revoke_all_tokens", args=[app.pk])
    assert f'href="{url}"' in page and "Revoke all tokens" in page

    confirm = admin_client.get(url).text
    assert "OAuth-issued tokens included" in confirm
    assert "2 tokens will be revoked" in confirm and "1 already revoked" in confirm
    assert "HTTP 401 (Unauthorized)" in confirm and 'value="CONFIRM"' in confirm
    assert AccessToken.objects.filter(app=app, revoked_at=None).count() == 2  # GET: nothing


def test_confirming_revokes_them_all_and_can_regenerate_the_secret(admin_client, admin_user):
    app = AppFactory(name="Leaky", client_secret="the-old-secret")
    make_token(app=app)
    oauth, _ = make_token(app=app, origin=TokenOrigin.OAUTH)
    url = reverse("admin:tokens_app_revoke_all_tokens", args=[app.pk])

    response = admin_client.post(url, {"reason": "secret in a CI log", "regenerate_secret": "on"})

    assert response.status_code == 200
    secret = re.search(r'<code class="secret-once">([^<]+)</code>', response.text).group(1)
    app.refresh_from_db()
    assert app.check_client_secret(secret) and not app.check_client_secret("the-old-secret")
    job = Job.objects.get()
    assert (job.kind, job.revoked, job.actor, job.reason) == (
        JobKind.APP_REVOKE,
        2,
        admin_user,
        "secret in a CI log",
    )
    oauth.refresh_from_db()
    assert oauth.revoked_at is not None and oauth.revoked_by == admin_user.get_username()


def test_the_list_action_revokes_the_tokens_of_each_chosen_app(admin_client):
    first, second, spared = AppFactory(), AppFactory(), AppFactory()
    for app in (first, second, spared):
        make_token(app=app)
    changelist = reverse("admin:tokens_app_changelist")
    data = {"action": "revoke_all_tokens", "_selected_action": [first.pk, second.pk]}

    confirm = admin_client.post(changelist, data)
    assert confirm.status_code == 200 and "Revoke all tokens" in confirm.text
    assert not AccessToken.objects.filter(revoked_at__isnull=False).exists()

    response = admin_client.post(changelist, data | {"post": "yes", "reason": ""})
    assert response.status_code == 302
    assert Job.objects.count() == 2
    assert set(
        AccessToken.objects.filter(revoked_at__isnull=False).values_list("app", flat=True)
    ) == {
        first.pk,
        second.pk,
    }


def test_jobs_are_read_only_records_in_the_admin(admin_client):
    app = AppFactory()
    make_token(app=app)
    admin_client.post(reverse("admin:tokens_app_revoke_all_tokens", args=[app.pk]), {})
    job = Job.objects.get()
    listing = admin_client.get(reverse("admin:tokens_job_changelist")).text
    assert "1 of 1 (100%), 1 revoked" in listing
    page = admin_client.get(reverse("admin:tokens_job_change", args=[job.pk])).text
    assert "Follow the job" in page and 'name="_save"' not in page
    assert admin_client.get(reverse("admin:tokens_job_add")).status_code == 403
