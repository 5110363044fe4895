"""The "last used" writer thread: a check queues its use, the thread writes it, and no
check waits for a batch's UPDATE."""

import os
import runpy
import threading
import time
import types
from pathlib import Path

import pytest
from django.db import DatabaseError

from tests.factories import PlanFactory, make_token
from tokens.gateway import last_used

pytestmark = pytest.mark.django_db(transaction=True)  # the thread has its own connection


@pytest.fixture
def plan():
    return PlanFactory(api__base_path="/pay")


@pytest.fixture
def writer(monkeypatch):
    """The writer thread of this process, waking every 20 ms; which threads wrote."""
    monkeypatch.setattr(last_used, "LAST_USED_BATCH_SECONDS", 0.02)
    writers: list[str] = []
    write = last_used._write_last_used

    def recorded(token_ids, when):
        writers.append(threading.current_thread().name)
        write(token_ids, when)

    monkeypatch.setattr(last_used, "_write_last_used", recorded)
    last_used.start_last_used_writer()
    yield writers
    last_used.stop_last_used_writer()
    time.sleep(0.1)  # its next wake-up ends it


def check(client, secret):
    return client.get(
        "/gateway/auth", HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_ORIGINAL_URI="/pay/x"
    )


def written(token, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        token.refresh_from_db()
        if token.last_used_at is not None:
            return True
        time.sleep(0.02)
    return False


def test_the_thread_writes_what_the_checks_queue(client, plan, writer):
    token, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200
    assert "MainThread" not in writer  # the check itself wrote nothing

    assert written(token)
    assert writer and set(writer) == {"last-used"}
    assert not last_used._pending_uses


def test_a_batch_that_fails_is_written_by_a_later_one(client, plan, writer, monkeypatch, caplog):
    token, secret = make_token(plans=[plan])
    write, failures = last_used._write_last_used, []

    def flaky(token_ids, when):
        if not failures:  # the database is down for the first batch
            failures.append(token_ids)
            raise DatabaseError("database unavailable")
        write(token_ids, when)

    monkeypatch.setattr(last_used, "_write_last_used", flaky)
    assert check(client, secret).status_code == 200  # a lost write never fails the check

    assert written(token)  # by the next batch: the thread lived on
    assert failures == [[token.pk]]
    assert "Could not record the last uses" in caplog.text
    assert set(writer) == {"last-used"}


def test_without_the_thread_the_check_writes(client, plan, monkeypatch):
    """Elsewhere (runserver, ASGI, tests) the first check that finds a batch due writes it."""
    monkeypatch.setattr(last_used, "_flush_due", 0.0)
    token, secret = make_token(plans=[plan])
    assert check(client, secret).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_gunicorn_starts_it_in_each_worker_of_the_portal():
    hooks = runpy.run_path(str(Path(__file__).resolve().parent.parent.parent / "gunicorn.conf.py"))
    try:
        hooks["post_worker_init"](worker=types.SimpleNamespace(age=1))  # the first worker
        assert last_used._writer_pid == os.getpid()
    finally:
        last_used.stop_last_used_writer()


def test_a_restarted_writer_is_one_thread(monkeypatch):
    monkeypatch.setattr(last_used, "LAST_USED_BATCH_SECONDS", 0.02)
    before = set(threading.enumerate())  # (an earlier test's may still be asleep)
    try:
        last_used.start_last_used_writer()
        last_used.stop_last_used_writer()
        last_used.start_last_used_writer()  # before the first has woken up
        time.sleep(0.2)
        alive = [
            thread for thread in set(threading.enumerate()) - before if thread.name == "last-used"
        ]
        assert len(alive) == 1
    finally:
        last_used.stop_last_used_writer()
        time.sleep(0.1)
