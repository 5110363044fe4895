"""Revocation under process-level faults, with real processes: two gunicorn servers, a
redis-server of the test's own that is killed, restored from an old snapshot, or frozen.

- Redis restarted from a snapshot taken before a revoke: no server accepts the token
  again (the gateway's entries are tied to the run_id of the Redis that holds them).
- Redis frozen while a revoke is made: the revoke is committed and reported as not yet
  effective (503); once Redis is back, a retry purges, and no server accepts the token.
- Several gunicorn workers without Redis in production: gunicorn refuses to start.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests

from tests.e2e import servers

pytestmark = pytest.mark.e2e


def redis_cli(port: int, *command: str) -> str:
    import redis

    client = redis.Redis(port=port, socket_timeout=5)
    return client.execute_command(*command)


@pytest.fixture
def world(tmp_path):
    """Two portal servers on one SQLite file and one redis-server of the test's own."""
    port = servers.free_port()
    database = tmp_path / "portal.sqlite3"
    env = servers.portal_env(
        DATABASE_URL=f"sqlite:///{database}",
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        TOKEN_PORTAL_GATEWAY_CACHE_SECONDS="300",
        REDIS_TIMEOUT="0.5",
        REDIS_CONNECT_TIMEOUT="0.5",
    )
    with servers.redis_server(tmp_path, port) as redis_process:
        servers.manage("migrate", "--no-input", env=env)
        payer = json.loads(
            servers.manage("create_app", "--name", "Payer", "--subscribe", "/pay:Gold", env=env)
        )
        with servers.gunicorn(env=env) as first, servers.gunicorn(env=env) as second:
            yield {
                "servers": (first, second),
                "payer": payer,
                "port": port,
                "dir": tmp_path,
                "redis": redis_process,
            }


def issue(base_url, payer) -> str:
    answer = requests.post(
        base_url + "/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=(payer["client_id"], payer["client_secret"]),
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def revoke(base_url, payer, secret) -> requests.Response:
    return requests.post(
        base_url + "/oauth/revoke/",
        data={"token": secret},
        auth=(payer["client_id"], payer["client_secret"]),
        timeout=10,
    )


def gateway_check(base_url, secret) -> int:
    return requests.get(
        base_url + "/gateway/auth",
        headers={"Authorization": f"Bearer {secret}", "X-Original-URI": "/pay/x"},
        timeout=10,
    ).status_code


def statuses(world, secret, *, seconds: float) -> set[int]:
    """Every answer both servers give for ``secret`` over ``seconds``."""
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for base_url in world["servers"]:
            seen.add(gateway_check(base_url, secret))
        time.sleep(0.02)
    return seen


def test_a_redis_restarted_from_a_snapshot_taken_before_a_revoke_brings_back_no_token(world):
    first, second = world["servers"]
    revoked = issue(first, world["payer"])
    kept = issue(first, world["payer"])
    for base_url in (first, second):  # both cached as active, in Redis and in each process
        assert gateway_check(base_url, revoked) == 200
        assert gateway_check(base_url, kept) == 200
    assert redis_cli(world["port"], "SAVE")  # the snapshot holds "active" for both
    entries_then = redis_cli(world["port"], "DBSIZE")

    assert revoke(first, world["payer"], revoked).status_code == 200
    assert statuses(world, revoked, seconds=0.5) == {401}

    # Redis dies and comes back from the old snapshot.
    os.kill(world["redis"].pid, signal.SIGKILL)
    world["redis"].wait(timeout=10)
    args = world["redis"].args
    with servers.running(args, port=world["port"]):
        assert redis_cli(world["port"], "DBSIZE") == entries_then  # the old entries are back
        assert statuses(world, revoked, seconds=3) == {401}
        assert statuses(world, kept, seconds=0.5) == {200}  # and the others still work


@contextlib.contextmanager
def frozen(process):
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def test_a_revoke_while_redis_is_frozen_says_so_and_a_retry_makes_it_hold(world):
    first, second = world["servers"]
    secret = issue(first, world["payer"])
    for base_url in (first, second):
        assert gateway_check(base_url, secret) == 200

    with frozen(world["redis"]):
        answer = revoke(first, world["payer"], secret)

    # Committed, but the purge did not reach Redis: the client is told, with the retry.
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    assert answer.headers["Retry-After"] == "1"

    retried = revoke(first, world["payer"], secret)

    assert retried.status_code == 200
    assert statuses(world, secret, seconds=1) == {401}


def test_two_workers_without_redis_are_refused_in_production(tmp_path):
    env = servers.portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    port = servers.free_port()
    args = [sys.executable, "-m", "gunicorn", "portal.wsgi:application"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "2"]
    with tempfile.TemporaryFile() as log:
        done = subprocess.run(
            args, cwd=servers.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=60
        )
        log.seek(0)
        output = log.read().decode(errors="replace")
    assert done.returncode != 0
    assert "refuses to start" in output and "REDIS_URL" in output


def test_one_worker_without_redis_starts(tmp_path):
    env = servers.portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    servers.manage("migrate", "--no-input", env=env)
    with servers.gunicorn(env=env, workers=1) as base_url:
        missing = f"tpk_{uuid.uuid4().hex}"
        assert gateway_check(base_url, missing) == 401


def test_a_failover_and_a_failback_bring_back_no_token(tmp_path):
    """Primary A, replica B. A check caches "active" on A; B takes over and the revoke's
    purge lands there; A takes over again, with its old entry still in its data and its
    run_id unchanged (no restart). The purge, replicated to A as a shadow, still answers."""
    import redis as redis_py

    from portal.cache.redis import RedisCache

    ports = servers.free_port(), servers.free_port()
    binary = servers.require_binary("redis-server")
    args = [
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
        + ["--dbfilename", f"{port}.rdb", "--repl-diskless-sync-delay", "0"]
        for port in ports
    ]
    with servers.running(args[0], port=ports[0]), servers.running(args[1], port=ports[1]):
        a, b = (redis_py.Redis(port=port, socket_timeout=5) for port in ports)

        def follow(replica, primary_port):
            replica.execute_command("REPLICAOF", "127.0.0.1", str(primary_port))
            replica.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            deadline = time.monotonic() + 10
            while replica.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica never caught up"
                time.sleep(0.05)

        def promote(server):
            server.execute_command("REPLICAOF", "NO", "ONE")

        def backend(port):  # a portal process, its REDIS_URL naming the primary of the day
            options = {
                "socket_timeout": 1,
                "LOCAL_TIER": {
                    "keep": False, "prefixes": ("gw:tok:",), "seconds": 30,
                    "ping": 0.01, "trust": 0.05, "settle": 0.0,
                },
            }  # fmt: skip
            return RedisCache(f"redis://127.0.0.1:{port}/0", {"OPTIONS": options})

        follow(b, ports[0])
        assert backend(ports[0]).add("gw:tok:x", "active", 60)  # a check caches "active" on A
        assert a.execute_command("WAIT", 1, 5000) == 1  # B has it too

        promote(b)  # failover: B is the primary, A its replica
        follow(a, ports[1])
        on_b = backend(ports[1])
        assert on_b.get("gw:tok:x") is None  # A's entry is not B's
        on_b.set("gw:tok:x", "purged", 10)  # the revoke's purge, on B
        assert b.execute_command("WAIT", 1, 5000) == 1  # A has it too

        run_id = a.info("server")["run_id"]
        promote(a)  # failback: A again, same run_id, its old entry still in its data
        follow(b, ports[0])
        assert a.info("server")["run_id"] == run_id
        assert any(b"gw:tok:x@" + run_id.encode() in key for key in a.keys("*")), a.keys("*")

        assert backend(ports[0]).get("gw:tok:x") == "purged"


def test_more_workers_asked_for_later_are_refused_too(tmp_path):
    """gunicorn -w 1 without Redis in production, then ``kill -TTIN``: still one worker."""
    env = servers.portal_env(DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    servers.manage("migrate", "--no-input", env=env)
    port = servers.free_port()
    args = [sys.executable, "-m", "gunicorn", "portal.wsgi:application"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "1"]
    with servers.running(args, port=port, env=env) as arbiter:
        os.kill(arbiter.pid, signal.SIGTTIN)
        time.sleep(2)  # the arbiter handles the signal in its next loop (about a second)
        children = subprocess.run(
            ["pgrep", "-P", str(arbiter.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) == 1
