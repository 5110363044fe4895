"""Bulk revocation with real processes: a gunicorn portal, ``manage.py jobs_worker``
processes, a redis-server of the test's own (a worker is a process apart from the
server: only a shared cache lets its revokes reach the server's), a real Chromium; the
worker killed (SIGKILL) in the middle of a job.

- In the browser: Select all N matching → CONFIRM → the progress page → Finished, and the
  gateway answers 401 for every revoked token while the other app's tokens still pass.
- A worker killed mid-job: the job resumes, in another worker, after its last committed
  batch; every token is revoked once, with one audit event.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e import servers
from tests.e2e.browser import log_in

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"

SEED = """
import json
from django.contrib.auth.models import Group, User
from tokens import services
from tokens.models import App, Plan, Api
api = Api.objects.create(name="Payments", base_path="/pay")
gold = Plan.objects.create(api=api, name="Gold")
leaky, other = App.objects.create(name="Leaky"), App.objects.create(name="Other")
user = User.objects.create_user("ada", password={password!r})
user.groups.add(Group.objects.get(name="Portal administrators"))
secrets = {{"leaky": [], "other": []}}
for name, app, n in (("leaky", leaky, {leaky}), ("other", other, 5)):
    for i in range(n):
        issued = services.token_create(app=app, owner=f"{{name}} {{i}}", plans=[gold], actor=None)
        secrets[name].append(issued.secret)
print(json.dumps({{"leaky_id": leaky.pk, "secrets": secrets}}))
"""


def _database_url(tmp_path, name: str) -> str:
    """PostgreSQL when the run has it (CI), else a SQLite file of the test's own."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgres"):
        import psycopg

        admin = base.rsplit("/", 1)[0] + "/postgres"
        database = f"tp_e2e_{name}_{os.getpid()}"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
            connection.execute(f'CREATE DATABASE "{database}"')
        return base.rsplit("/", 1)[0] + "/" + database
    return f"sqlite:///{tmp_path / 'portal.sqlite3'}"


def _seed(env, leaky: int) -> dict:
    out = servers.manage("shell", "-c", SEED.format(password=PASSWORD, leaky=leaky), env=env)
    return json.loads(out.strip().splitlines()[-1])


@contextlib.contextmanager
def worker(env, log_path):
    """``manage.py jobs_worker`` in its own process, logging to ``log_path`` (a pipe
    nobody reads would fill up and block it)."""
    with open(log_path, "a") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "jobs_worker", "--interval", "0.2", "--no-startup-delay"],
            cwd=servers.BASE_DIR,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            yield process
        finally:
            servers.stop(process)


def gateway_check(base_url, secret) -> int:
    return requests.get(
        base_url + "/gateway/auth",
        headers={"Authorization": f"Bearer {secret}", "X-Original-URI": "/pay/x"},
        timeout=10,
    ).status_code


def job_state(env) -> dict:
    out = servers.manage(
        "shell",
        "-c",
        "import json; from tokens.models import Job, AuditEvent; j = Job.objects.get(); "
        "print(json.dumps({'status': j.status, 'processed': j.processed, 'revoked': j.revoked,"
        " 'attempts': j.attempts, 'total': j.total, 'events': AuditEvent.objects.filter("
        "action='revoked').count(), 'tokens': AuditEvent.objects.filter(action='revoked')"
        ".values('token').distinct().count()}))",
        env=env,
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def redis_url(tmp_path):
    port = servers.free_port()
    with servers.redis_server(tmp_path, port):
        yield f"redis://127.0.0.1:{port}/0"


def test_select_all_matching_then_confirm_revokes_them_all_through_the_worker(
    tmp_path, browser_page, redis_url
):
    env = servers.portal_env(
        DATABASE_URL=_database_url(tmp_path, "browser"),
        REDIS_URL=redis_url,
        DJANGO_DEBUG="1",  # plain HTTP cookies; two-factor off for a user without a device
        TOKEN_PORTAL_BULK_REVOKE_INLINE_LIMIT="5",
        TOKEN_PORTAL_JOB_BATCH_SIZE="10",
        TOKEN_PORTAL_JOB_BATCH_PAUSE="0.3",
    )
    servers.manage("migrate", "--no-input", env=env)
    world = _seed(env, leaky=60)
    page = browser_page
    with servers.gunicorn(env=env) as base_url, worker(env, tmp_path / "worker.log"):
        for secret in world["secrets"]["leaky"][:3] + world["secrets"]["other"]:
            assert gateway_check(base_url, secret) == 200  # and now cached

        log_in(page, base_url, "ada", PASSWORD)
        page.wait_for_url(re.compile(r"/tokens/$"))
        page.goto(f"{base_url}/tokens/?app={world['leaky_id']}&per_page=10")
        select_all = page.get_by_label(re.compile(r"Select all 60 matching"))
        assert not select_all.is_visible()  # offered once the page is selected
        page.get_by_label("Select all on this page").check()
        assert page.get_by_label(re.compile(r"^Select tpk_")).count() == 10
        select_all.check()
        page.get_by_role("button", name="Revoke selected").click()

        page.wait_for_url(re.compile(r"/tokens/revoke-selected/"))
        assert page.get_by_test_id("will-revoke").inner_text() == "60 tokens will be revoked."
        assert "HTTP 401 (Unauthorized)" in page.get_by_role("alert").first.inner_text()
        page.get_by_label("Reason (optional)").fill("partner laptop stolen")
        page.get_by_role("button", name="CONFIRM").click()

        page.wait_for_url(re.compile(r"/tokens/jobs/[0-9a-f-]+/$"))
        progress = page.get_by_role("progressbar", name="Progress of the job")
        assert progress.is_visible()
        seen = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen.add(page.locator("[data-field='status_label']").inner_text())
            if "Finished" in seen:
                break
            time.sleep(0.2)
        assert "Finished" in seen, seen
        assert seen & {"Queued", "Running"}, "the page showed the job before it finished"
        page.wait_for_load_state()
        summary = page.locator("main").inner_text()
        assert "60 revoked" in summary and "0 skipped" in summary

        for secret in world["secrets"]["leaky"]:
            assert gateway_check(base_url, secret) == 401
        for secret in world["secrets"]["other"]:
            assert gateway_check(base_url, secret) == 200

        page.get_by_role("link", name="Show the revoked tokens").click()
        page.wait_for_url(re.compile(r"/tokens/\?job="))
        assert "60 tokens" in page.locator("caption").inner_text()
        page.get_by_role("link", name="Jobs").first.click()
        assert "partner laptop stolen" not in page.locator("table").inner_text()
        assert "Revoke selected tokens" in page.locator("table").inner_text()


def test_a_worker_killed_mid_job_is_resumed_by_another_and_nothing_is_revoked_twice(
    tmp_path, redis_url
):
    env = servers.portal_env(
        DATABASE_URL=_database_url(tmp_path, "kill"),
        REDIS_URL=redis_url,
        TOKEN_PORTAL_BULK_REVOKE_INLINE_LIMIT="5",
        TOKEN_PORTAL_JOB_BATCH_SIZE="20",
        TOKEN_PORTAL_JOB_BATCH_PAUSE="0.2",
        TOKEN_PORTAL_JOB_STALL_SECONDS="2",
    )
    servers.manage("migrate", "--no-input", env=env)
    world = _seed(env, leaky=300)
    servers.manage(
        "shell",
        "-c",
        "from django.utils import timezone; from tokens import jobs; from tokens.models import "
        f"App; app = App.objects.get(pk={world['leaky_id']}); "
        "jobs.start(kind='bulk_revoke', actor='e2e', description='Leaky', "
        f"total=app.tokens.count(), query='app={world['leaky_id']}')",
        env=env,
    )
    with worker(env, tmp_path / "worker.log") as first:
        deadline = time.monotonic() + 30
        while job_state(env)["processed"] < 60 and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)  # no chance to clean up
        first.wait(timeout=10)
    stopped = job_state(env)
    assert stopped["status"] == "running"
    assert 60 <= stopped["processed"] < 300
    assert stopped["events"] == stopped["revoked"] == stopped["processed"]

    with servers.gunicorn(env=env) as base_url, worker(env, tmp_path / "worker.log"):
        deadline = time.monotonic() + 60
        while job_state(env)["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.5)
        done = job_state(env)
        assert done["status"] == "done", done
        assert done["revoked"] == done["processed"] == done["total"] == 300
        assert done["events"] == done["tokens"] == 300  # one audit event per token
        assert done["attempts"] == 2
        for secret in world["secrets"]["leaky"][::25]:
            assert gateway_check(base_url, secret) == 401
        assert gateway_check(base_url, world["secrets"]["other"][0]) == 200


def test_a_worker_process_without_a_shared_cache_refuses_to_start(tmp_path):
    env = servers.portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "jobs_worker", "--batch"],
        cwd=servers.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "a job worker needs REDIS_URL" in done.stderr
