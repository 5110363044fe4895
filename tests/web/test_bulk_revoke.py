"""The list's Revoke selected, Select all N matching, an app's Revoke all tokens, and the
Jobs pages (through the Django test client; the browser test is in tests/e2e)."""

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.factories import AppFactory, make_token
from tokens import crypto
from tokens.models import AccessToken, AuditAction, AuditEvent, Job, JobKind, JobStatus, TokenOrigin

pytestmark = pytest.mark.django_db

LIST = "/tokens/"
BULK = "/tokens/revoke-selected/"


def _confirm_fields(html):
    """The hidden fields of the confirm page's form, as the browser would post them."""
    return re.findall(
        r'<input type="hidden" name="(filter|cutoff|all|token)" value="([^"]*)"', html
    )


def _post_confirm(client, html, reason=""):
    data = {}
    for name, value in _confirm_fields(html):
        data.setdefault(name, []).append(value.replace("&amp;", "&"))
    data["reason"] = reason
    return client.post(BULK, data)


def test_each_revocable_row_has_a_checkbox_named_by_its_code(portal_admin_client):
    app = AppFactory()
    active, _ = make_token(app=app)
    oauth, _ = make_token(app=app, origin=TokenOrigin.OAUTH)
    revoked, _ = make_token(app=app, revoked=True)
    html = portal_admin_client.get(LIST).content.decode()

    assert f'aria-label="Select {active.masked_code}"' in html
    assert f'aria-label="Select {oauth.masked_code}"' not in html
    assert f'aria-label="Select {revoked.masked_code}"' not in html
    assert 'aria-label="Select all on this page"' in html
    assert "Select all 3 matching" in html
    assert "Revoke selected" in html


def test_a_viewer_sees_no_selection(client):
    from tests.factories import user_with_perms

    client.force_login(user_with_perms("tokens.view_accesstoken"))
    token, _ = make_token()
    html = client.get(LIST).content.decode()
    assert token.masked_code in html
    assert "Revoke selected" not in html and "Select " + token.masked_code not in html


def test_ticked_tokens_are_confirmed_then_revoked_in_the_request(portal_admin_client, portal_admin):
    app = AppFactory()
    a, secret_a = make_token(app=app)
    b, _ = make_token(app=app)
    untouched, _ = make_token(app=app)
    page = portal_admin_client.get(BULK, {"token": [a.public_id, b.public_id], "filter": "q=x"})
    html = page.content.decode()
    assert page.status_code == 200
    assert "2 tokens ticked on the list" in html
    assert re.search(r"<strong>2</strong> tokens will be revoked", html)
    assert "HTTP 401 (Unauthorized)" in html and "CONFIRM" in html
    assert AccessToken.objects.filter(revoked_at__isnull=False).count() == 0  # GET changes nothing

    response = _post_confirm(portal_admin_client, html, reason="laptop stolen")
    job = Job.objects.get()
    assert response.status_code == 302 and response.url == job.get_absolute_url()
    assert (job.status, job.revoked, job.actor, job.reason) == (
        JobStatus.DONE,
        2,
        portal_admin,
        "laptop stolen",
    )
    for token in (a, b):
        token.refresh_from_db()
        assert token.revoked_at and token.revocation_reason == "laptop stolen"
        assert AuditEvent.objects.get(token=token, action=AuditAction.REVOKED).job == job
    untouched.refresh_from_db()
    assert untouched.revoked_at is None
    summary = portal_admin_client.get(job.get_absolute_url()).content.decode()
    assert "Finished" in summary and "Show the revoked tokens" in summary
    assert secret_a not in summary


def test_select_all_matching_takes_every_page_of_the_filter_and_says_what_it_skips(
    portal_admin_client,
):
    app = AppFactory(name="Leaky")
    for _ in range(30):
        make_token(app=app)
    make_token(app=app, origin=TokenOrigin.OAUTH)
    make_token(app=app, expired=True)
    make_token(app=app, revoked=True)
    other, _ = make_token(app=AppFactory(name="Other"))

    listing = portal_admin_client.get(LIST, {"app": app.pk, "per_page": 10}).content.decode()
    assert "Select all 33 matching" in listing
    page = portal_admin_client.get(BULK, {"all": "1", "filter": f"app={app.pk}&per_page=10"})
    html = page.content.decode()
    assert "App: Leaky" in html
    assert re.search(r"<strong>30</strong> tokens will be revoked", html)
    assert "3 tokens will be skipped" in html
    assert "1 OAuth-issued" in html and "1 expired" in html and "1 already revoked" in html

    _post_confirm(portal_admin_client, html)
    job = Job.objects.get()
    assert job.description == "App: Leaky"
    assert job.revoked == 30 and job.skipped_total == 3
    assert (
        AccessToken.objects.filter(app=app, revoked_at__isnull=True).count() == 2
    )  # oauth, expired
    other.refresh_from_db()
    assert other.revoked_at is None

    # The summary's link lists exactly the tokens the job revoked.
    revoked_list = portal_admin_client.get(LIST, {"job": job.public_id, "per_page": 100})
    assert revoked_list.context["paginator"].count == 30


def test_a_big_selection_runs_as_a_job_with_a_progress_page(
    settings, portal_admin_client, django_capture_on_commit_callbacks
):
    settings.TOKEN_PORTAL = {
        **settings.TOKEN_PORTAL,
        "BULK_REVOKE_INLINE_LIMIT": 5,
        "JOB_BATCH_SIZE": 4,
    }
    app = AppFactory()
    for _ in range(9):
        make_token(app=app)
    html = portal_admin_client.get(BULK, {"all": "1", "filter": f"app={app.pk}"}).content.decode()
    assert "background job" in html
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_confirm(portal_admin_client, html)
    job = Job.objects.get()
    assert job.status == JobStatus.QUEUED
    progress = portal_admin_client.get(response.url).content.decode()
    assert 'http-equiv="refresh"' in progress  # updates itself without JavaScript
    assert "<progress" in progress and "Queued" in progress
    assert portal_admin_client.get(response.url, {"format": "json"}).json()["status"] == "queued"

    call_command("jobs_worker", batch=True, interval=0, startup_delay=False)

    state = portal_admin_client.get(response.url, {"format": "json"}).json()
    assert state | {"error": ""} == {
        "status": "done",
        "status_label": "Finished",
        "finished": True,
        "total": 9,
        "processed": 9,
        "revoked": 9,
        "skipped": 0,
        "percent": 100,
        "error": "",
    }
    done = portal_admin_client.get(response.url).content.decode()
    assert 'http-equiv="refresh"' not in done
    jobs_page = portal_admin_client.get(reverse("tokens:jobs")).content.decode()
    assert "Revoke selected tokens" in jobs_page and "9 revoked" in jobs_page


def test_nothing_selected_goes_back_to_the_list_with_a_message(portal_admin_client):
    response = portal_admin_client.get(BULK, {"filter": "status=active"}, follow=True)
    assert response.redirect_chain[-1][0] == f"{LIST}?status=active"
    assert "Nothing was selected" in response.content.decode()


def test_a_filter_matching_zero_tokens_offers_nothing_to_confirm(portal_admin_client):
    make_token(owner="Somebody")
    html = portal_admin_client.get(BULK, {"all": "1", "filter": "q=nobody-at-all"}).content.decode()
    assert re.search(r"<strong>0</strong> tokens will be revoked", html)
    assert "CONFIRM" not in html
    response = portal_admin_client.post(BULK, {"all": "1", "filter": "q=nobody-at-all"})
    assert response.status_code == 302 and not Job.objects.exists()


def test_an_unreadable_filter_revokes_nothing(portal_admin_client):
    make_token()
    response = portal_admin_client.post(BULK, {"all": "1", "filter": "created_after=not-a-date"})
    assert response.status_code == 302
    assert not Job.objects.exists()
    assert not AccessToken.objects.filter(revoked_at__isnull=False).exists()


def test_a_pasted_secret_in_the_filter_is_never_echoed(portal_admin_client):
    token, secret = make_token()
    html = portal_admin_client.get(BULK, {"all": "1", "filter": f"q={secret}"}).content.decode()
    assert secret not in html
    assert token.masked_code in html or crypto.display_parts(secret)[0] in html


def test_revoke_all_tokens_of_an_app_takes_oauth_tokens_and_can_renew_its_secret(
    portal_admin_client,
):
    app = AppFactory(name="Acme", client_secret="old-secret-value")
    make_token(app=app)
    oauth, _ = make_token(app=app, origin=TokenOrigin.OAUTH)
    listing = portal_admin_client.get(LIST, {"app": app.pk}).content.decode()
    assert "Revoke all tokens of Acme" in listing

    url = reverse("tokens:app_revoke", args=[app.pk])
    page = portal_admin_client.get(url).content.decode()
    assert "OAuth-issued tokens included" in page
    assert re.search(r"<strong>2</strong> tokens will be revoked", page)
    response = portal_admin_client.post(url, {"reason": "secret leaked", "regenerate_secret": "on"})
    html = response.content.decode()
    assert response.status_code == 200 and "shown only this once" in html
    secret = re.search(r'id="new-client-secret"[^>]*value="([^"]+)"', html).group(1)
    app.refresh_from_db()
    assert app.check_client_secret(secret) and not app.check_client_secret("old-secret-value")
    job = Job.objects.get()
    assert (job.kind, job.app, job.revoked) == (JobKind.APP_REVOKE, app, 2)
    oauth.refresh_from_db()
    assert oauth.revoked_at and oauth.revocation_reason == "secret leaked"
    assert secret not in portal_admin_client.get(job.get_absolute_url()).content.decode()


def test_renewing_the_secret_needs_the_right_to_change_apps(client):
    from tests.factories import user_with_perms

    user = user_with_perms("tokens.view_accesstoken", "tokens.revoke_accesstoken")
    client.force_login(user)
    app = AppFactory()
    make_token(app=app)
    url = reverse("tokens:app_revoke", args=[app.pk])
    assert "regenerate the client secret" not in client.get(url).content.decode()
    assert client.post(url, {"regenerate_secret": "on"}).status_code == 403
    assert not Job.objects.exists()


@pytest.fixture(autouse=True)
def _worker_keeps_the_test_connection(monkeypatch):
    # The worker run in-process (call_command) closes "old" connections between tasks;
    # on PostgreSQL that closes the test's own transaction's connection.
    monkeypatch.setattr(
        "django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None
    )
