"""Start real servers for end-to-end tests: nginx, gunicorn, on free loopback ports.

Every helper is a context manager that stops what it started, and every wait is
bounded. A test that needs a binary or service which is missing is skipped with the
reason, except under CI (``CI=true``), where it fails: CI must run it.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def unavailable(reason: str):
    """Skip the test, or fail it under CI, where every test must really run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None:
        unavailable(f"{name} is not installed")
    return path


def require_redis(url: str = REDIS_URL) -> str:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as error:
        unavailable(f"no Redis at {url}: {error}")
    return url


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, process: subprocess.Popen | None = None, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def running(
    args: list[str], *, port: int, env: dict | None = None, cwd=BASE_DIR, timeout=20.0
) -> Iterator[subprocess.Popen]:
    """Run ``args`` until the block ends; wait for ``port``; show its output if it fails."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_port(port, process=process, timeout=timeout)
            yield process
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-5000:])
            raise
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL to the whole process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextlib.contextmanager
def nginx(config_body: str, *, port: int) -> Iterator[subprocess.Popen]:
    """A foreground nginx whose ``http { … }`` block is ``config_body``, in a temp prefix."""
    binary = require_binary("nginx")
    prefix = Path(tempfile.mkdtemp(prefix="tp-nginx-"))
    prefix.chmod(0o755)  # workers may drop to an unprivileged user
    try:
        (prefix / "nginx.conf").write_text(
            "worker_processes 1;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "  access_log off;\n"
            f"  client_body_temp_path {prefix}/body;\n"
            f"  proxy_temp_path {prefix}/proxy;\n"
            f"  {config_body}\n"
            "}\n"
        )
        global_directives = (
            f"daemon off; master_process on; pid {prefix}/nginx.pid; error_log stderr;"
        )
        with running(
            [binary, "-p", str(prefix), "-c", "nginx.conf", "-g", global_directives], port=port
        ) as process:
            yield process
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def token_check_location(portal_port) -> str:
    """nginx's ``location = /_token_check`` exactly as docs/gateway.md documents it."""
    return (
        "location = /_token_check {\n"
        "    internal;\n"
        "    proxy_method GET;\n"
        f"    proxy_pass http://127.0.0.1:{portal_port}/gateway/auth;\n"
        "    proxy_pass_request_body off;\n"
        '    proxy_set_header Content-Length "";\n'
        "    proxy_set_header X-Original-URI $request_uri;\n"
        '    proxy_set_header X-Forwarded-Uri "";\n'
        "}"
    )


def portal_env(**overrides: str) -> dict[str, str]:
    """The environment of a production-like Token Portal process."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "TOKEN_PORTAL_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="e2e-only-" + "x" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout=120) -> str:
    """Run ``manage.py`` with ``env``; returns its standard output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-5000:]}")
    return done.stdout


@contextlib.contextmanager
def gunicorn(
    *, env: dict[str, str], workers: int = 1, app: str = "portal.wsgi:application"
) -> Iterator[str]:
    """A gunicorn serving ``app`` (the portal) on a free loopback port; yields its base URL."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--graceful-timeout",
        "2",
    ]
    with running(args, port=port, env=env, timeout=30):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def redis_server(directory: Path, port: int):
    """A redis-server of this test's own, persisting to ``directory`` only when told to
    (SAVE), never on its own."""
    binary = require_binary("redis-server")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(directory), "--dbfilename", "dump.rdb"]
    with running(args, port=port) as process:
        yield process
