"""What every bench command shares: data sets, servers on loopback, wrk, figures.

Data sets are built once per (backend, size) under ``BENCH_DIR`` (SQLite files,
PostgreSQL databases ``<BENCH_DB_PREFIX>_<size>``, ``tp_bench`` by default) and reused
while their JSON of known secrets exists; delete it (or pass ``--fresh``) to rebuild.
Servers are gunicorn with 2 sync workers (tests/e2e/servers.py); load is wrk from
Debian's packages.
"""

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.e2e import servers

BASE_DIR = servers.BASE_DIR
BENCH_DIR = Path(os.environ.get("BENCH_DIR", "/tmp/tp-bench"))
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# Two benches running at once on one PostgreSQL server need different prefixes
# (with different BENCH_DIRs): a data set is rebuilt by dropping its database.
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "tp_bench")
WORKERS = 2
CONNECTIONS = 16
LUA = Path(__file__).resolve().parent / "lua" / "load.lua"
BACKENDS = ("sqlite", "postgresql")


def say(*parts) -> None:
    print(*parts, flush=True)


def load() -> str:
    """The load average, to print beside every figure (others share this machine)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    import gunicorn

    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    # Every server here starts in the project's root, so gunicorn.conf.py picks its worker.
    config = {}
    exec((BASE_DIR / "gunicorn.conf.py").read_text(), config)  # noqa: S102 - our own file
    return (
        f"nproc={os.cpu_count()}, memory={mem_kib / 2**20:.1f} GiB, load={load()}, "
        f"gunicorn {gunicorn.__version__} {WORKERS} × {config.get('worker_class', 'sync')}"
    )


def database_url(backend: str, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{BENCH_DIR / (name + '.sqlite3')}"
    return f"{PG_URL}/{name}"


def portal_env(backend: str, size: int, **overrides) -> dict[str, str]:
    env = servers.portal_env(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url(backend, f"{DB_PREFIX}_{size}"),
        TOKEN_PORTAL_ALLOW_DEMO="1",
        TOKEN_PORTAL_REQUIRE_MFA="0",
        DJANGO_LOG_LEVEL="WARNING",
    )
    if backend == "postgresql":
        env["REDIS_URL"] = REDIS_URL
        env["DJANGO_CACHE_PREFIX"] = f"tpb-{uuid.uuid4().hex[:8]}"
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout=900) -> str:
    return servers.manage(*args, env=env, timeout=timeout)


def drop_database(backend: str, name: str) -> None:
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (BENCH_DIR / f"{name}.sqlite3{suffix}").unlink()
        return
    subprocess.run(
        ["psql", PG_URL + "/postgres", "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
        check=True,
        capture_output=True,
    )


def create_database(backend: str, name: str) -> None:
    drop_database(backend, name)
    if backend == "postgresql":
        subprocess.run(
            ["psql", PG_URL + "/postgres", "-qc", f'CREATE DATABASE "{name}"'],
            check=True,
            capture_output=True,
        )


def portal_dataset(backend: str, size: int, *, fresh=False) -> tuple[dict, dict]:
    """A portal database with ``size`` tokens (2,000 of them with known secrets)."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    known = BENCH_DIR / f"{backend}-{size}.json"
    env = portal_env(backend, size)
    if fresh or not known.exists():
        say(f"  building the {backend} data set of {size:,} tokens (load {load()})")
        create_database(backend, f"{DB_PREFIX}_{size}")
        manage("migrate", "--no-input", "-v0", env=env)
        started = time.monotonic()
        manage("seed_demo", "--tokens", str(size - 2000), "--quiet-login", env=env, timeout=1800)
        say(f"  seeded in {time.monotonic() - started:.1f} s")
        manage("bench_tokens", "--count", "2000", "--out", str(known), env=env)
    return env, json.loads(known.read_text())


def dot_dataset(backend: str, size: int, *, fresh=False) -> tuple[dict, dict]:
    """django-oauth-toolkit's tables holding ``size`` access tokens."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    known = BENCH_DIR / f"dot-{backend}-{size}.json"
    env = {
        key: value
        for key, value in servers.portal_env().items()
        if key not in ("DJANGO_SETTINGS_MODULE",)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bench.dot.settings",
        DOT_DATABASE_URL=database_url(backend, f"{DB_PREFIX}_dot_{size}"),
    )
    if fresh or not known.exists():
        say(f"  building the django-oauth-toolkit data set of {size:,} tokens")
        create_database(backend, f"{DB_PREFIX}_dot_{size}")
        manage("migrate", "--no-input", "-v0", env=env)
        manage("dot_seed", "--tokens", str(size), "--out", str(known), env=env, timeout=1800)
    return env, json.loads(known.read_text())


def secrets_file(secrets: list[str], name: str) -> Path:
    path = BENCH_DIR / f"{name}.txt"
    path.write_text("\n".join(secrets) + "\n")
    return path


_TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(base_url: str) -> float:
    """CPU time (user + system) used so far by the gunicorn serving ``base_url``: its
    master and workers, found by the bind address on their command line."""
    bind = base_url.removeprefix("http://").encode()
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if bind not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def wrk(base_url: str, mode: str, *, seconds: float, secrets: Path | None = None, **env) -> dict:
    """One wrk run (2 threads, 16 connections); its figures as a dict.

    Besides throughput and latency: the server's CPU time per request (its gunicorn
    processes only, so other load on the machine hardly moves it; the database and
    Redis servers' own CPU is not in it).
    """
    binary = shutil.which("wrk") or "/usr/bin/wrk"
    run_env = dict(os.environ, BENCH_MODE=mode, **env)
    if secrets is not None:
        run_env["BENCH_SECRETS"] = str(secrets)
    before = load()
    cpu_before = server_cpu_seconds(base_url)
    done = subprocess.run(
        [binary, "-t2", f"-c{CONNECTIONS}", f"-d{round(seconds)}s", "-s", str(LUA), base_url],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk {mode} {base_url} failed: {done.stdout}{done.stderr}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRKJSON "))
    result = json.loads(line[len("WRKJSON ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["load"] = before
    cpu = server_cpu_seconds(base_url) - cpu_before
    result["cpu_us"] = cpu / max(1, result["requests"]) * 1e6
    return result


def median_of(runs: list[dict]) -> dict:
    return {
        "rps": statistics.median(run["rps"] for run in runs),
        "p50_ms": statistics.median(run["p50_us"] for run in runs) / 1000,
        "p99_ms": statistics.median(run["p99_us"] for run in runs) / 1000,
        "cpu_us": statistics.median(run["cpu_us"] for run in runs),
        "errors": sum(run["non2xx"] + run["socket_errors"] for run in runs),
        "runs": [round(run["rps"]) for run in runs],
        "loads": [run["load"] for run in runs],
    }


@contextlib.contextmanager
def gunicorn(env: dict[str, str], app: str = "portal.wsgi:application"):
    with servers.gunicorn(env=env, workers=WORKERS, app=app) as base_url:
        yield base_url


def flush_redis_prefix(env: dict[str, str]) -> None:
    prefix = env.get("DJANGO_CACHE_PREFIX")
    if not prefix or "REDIS_URL" not in env:
        return
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)


def python() -> str:
    return sys.executable
