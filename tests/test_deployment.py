"""What a deployment must configure for revocation to hold, checked where operators look."""

import logging
import subprocess
import sys
import uuid

import pytest

from portal import deployment
from portal.cache.redis import RedisCache
from tests.e2e import servers
from tests.test_deploy_check import ROOT, production_env


def test_several_processes_need_redis(settings):
    settings.REDIS_URL = ""
    assert deployment.shared_cache_problem(1) is None
    assert "REDIS_URL" in deployment.shared_cache_problem(2)
    settings.REDIS_URL = "redis://cache:6379/0"
    assert deployment.shared_cache_problem(4) is None


def test_production_refuses_to_start_and_debug_warns(settings, caplog):
    settings.REDIS_URL = ""
    settings.DEBUG = False
    with pytest.raises(SystemExit, match="refuses to start"):
        deployment.refuse_several_processes_without_redis(2)

    settings.DEBUG = True
    with caplog.at_level(logging.WARNING, logger="portal.deployment"):
        deployment.refuse_several_processes_without_redis(2)
    assert "2 worker processes without REDIS_URL" in caplog.text


def _backend(url: str) -> RedisCache:
    return RedisCache(
        url,
        {
            "KEY_PREFIX": f"dep-{uuid.uuid4().hex[:6]}",
            "OPTIONS": {
                "socket_timeout": 1,
                "LOCAL_TIER": {
                    "keep": False,
                    "prefixes": ("gw:tok:",),
                    "seconds": 5,
                    "ping": 0.01,
                    "trust": 0.05,
                    "settle": 0.0,
                },
            },
        },
    )


@pytest.fixture
def private_redis(tmp_path):
    binary = servers.require_binary("redis-server")
    port = servers.free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    with servers.running(
        [*args, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"], port=port
    ):
        yield f"redis://127.0.0.1:{port}/0"


def test_an_evicting_redis_is_flagged_at_start_up_and_by_check_deploy(private_redis):
    problems = _backend(private_redis).server_problems()
    assert any("maxmemory-policy allkeys-lru" in problem for problem in problems)

    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(REDIS_URL=private_redis),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "token_portal.W001" in done.stderr + done.stdout


def test_a_redis_user_that_may_not_ask_info_is_flagged():
    import redis

    url = servers.require_redis()
    admin = redis.Redis.from_url(url)
    user = f"tp-test-{uuid.uuid4().hex[:8]}"
    try:
        admin.acl_setuser(
            user, enabled=True, passwords=["+secret"], keys=["*"], channels=["*"],
            commands=["+@all", "-info"],
        )  # fmt: skip
        limited = _backend(
            f"redis://{user}:secret@127.0.0.1:{admin.connection_pool.connection_kwargs['port']}/0"
        )
        problems = limited.server_problems()
        assert any("run_id" in problem for problem in problems)
        # And nothing of the gateway's is kept: an entry cannot be tied to a server.
        assert limited.add("gw:tok:x", "active", 30) is False
        assert limited.get("gw:tok:x") is None
    finally:
        admin.acl_deluser(user)


def test_a_healthy_redis_has_no_problem():
    url = servers.require_redis()
    assert _backend(url).server_problems() == []
