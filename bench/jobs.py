"""Bulk revoke at scale: 100,000 tokens of a 1M-token database, by the job worker, while
gateways keep checking.

    .venv/bin/python -m bench.jobs [--size 1000000] [--revoke 100000] [--smoke]

PostgreSQL + Redis. A gunicorn portal (2 sync workers) and one ``manage.py jobs_worker``;
an app "Bench leaked" with ``--revoke`` portal tokens whose secrets the bench knows. It
measures, in one run:

- the gateway's throughput while idle (wrk, the 2,000 known tokens of another app);
- the job revoking every token of that app (the list's filter ``app=<id>``), from the
  worker's start to its end, and the audit events it wrote;
- the gateway's throughput during the job (wrk runs back to back while it runs);
- for 60 sampled tokens spread over the job, the time from the token's ``revoked_at``
  (set when its batch starts, before the batch commits) to the first 401 a poller saw:
  an upper bound of "401 within 1 s of the batch's commit".

The app, its tokens, events and job are deleted again at the end.
"""

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime

import psycopg
import requests

from bench import common

SAMPLES = 60


def _sql(env, query, *params):
    url = env["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(query, params).fetchall()


def run(size: int, revoke: int, *, seconds: float) -> dict:
    env, known = common.portal_dataset("postgresql", size)
    env = dict(env, TOKEN_PORTAL_BULK_REVOKE_INLINE_LIMIT="0", DJANGO_LOG_LEVEL="WARNING")
    out = common.BENCH_DIR / "leaked.json"
    common.say(f"  creating {revoke:,} tokens of the app 'Bench leaked'")
    common.manage("bench_leaked_app", "--count", str(revoke), "--out", str(out), env=env)
    leaked = json.loads(out.read_text())
    payer = common.secrets_file(known["secrets"], "secrets-jobs")
    uri = known["base_path"] + "/charges"
    samples = leaked["secrets"][:: max(1, len(leaked["secrets"]) // SAMPLES)][:SAMPLES]
    log = open(common.BENCH_DIR / "jobs-worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "jobs_worker", "--interval", "0.2", "--no-startup-delay"],
        cwd=common.BASE_DIR,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        with common.gunicorn(env) as base_url:
            common.wrk(base_url, "gateway", seconds=3, secrets=payer, BENCH_URI=uri)
            idle = common.wrk(base_url, "gateway", seconds=seconds, secrets=payer, BENCH_URI=uri)
            common.say(f"  idle gateway: {idle['rps']:.0f} req/s (load {idle['load']})")
            session = requests.Session()

            def check(secret):
                return session.get(
                    base_url + "/gateway/auth",
                    headers={"Authorization": f"Bearer {secret}", "X-Original-URI": uri},
                    timeout=10,
                ).status_code

            assert all(check(secret) == 200 for secret in samples)  # cached as active
            first_401 = {}
            done = threading.Event()

            def poll():
                while not done.is_set() and len(first_401) < len(samples):
                    for secret in samples:
                        if secret not in first_401 and check(secret) == 401:
                            first_401[secret] = time.time()
                    time.sleep(0.02)

            during = []

            def load_while_running():
                while not done.is_set():
                    during.append(
                        common.wrk(base_url, "gateway", seconds=5, secrets=payer, BENCH_URI=uri)
                    )

            poller = threading.Thread(target=poll)
            loader = threading.Thread(target=load_while_running)
            common.manage(
                "shell",
                "-c",
                "from tokens import jobs; "
                f"jobs.start(kind='bulk_revoke', actor='bench', description='Bench leaked', "
                f"total={revoke}, query='app={leaked['app_id']}')",
                env=env,
            )
            poller.start()
            loader.start()
            started = time.monotonic()
            while time.monotonic() - started < 900:
                status = _sql(env, "SELECT status FROM tokens_job ORDER BY id DESC LIMIT 1")
                if status[0][0] in ("done", "failed"):
                    break
                time.sleep(0.5)
            done.set()
            poller.join()
            loader.join()
            (job,) = _sql(
                env,
                "SELECT id, status, revoked, processed, started_at, finished_at "
                "FROM tokens_job ORDER BY id DESC LIMIT 1",
            )
            events = _sql(env, "SELECT count(*) FROM tokens_auditevent WHERE job_id = %s", job[0])
            revoked_at = dict(
                _sql(
                    env,
                    "SELECT digest, revoked_at FROM tokens_accesstoken WHERE app_id = %s "
                    "AND revoked_at IS NOT NULL",
                    leaked["app_id"],
                )
            )
            from tokens import crypto

            latencies = []
            for secret in samples:
                at = revoked_at.get(crypto.digest(secret))
                seen = first_401.get(secret)
                if at is None or seen is None:
                    latencies.append(float("inf"))
                else:
                    latencies.append(seen - datetime.timestamp(at))
            still_200 = sum(1 for secret in samples if check(secret) != 401)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        common.manage("bench_leaked_app", "--delete", env=env)
        common.flush_redis_prefix(env)
    during_rps = statistics.median(run["rps"] for run in during) if during else 0.0
    return {
        "status": job[1],
        "revoked": job[2],
        "processed": job[3],
        "job_seconds": (job[5] - job[4]).total_seconds() if job[5] and job[4] else None,
        "audit_events": events[0][0],
        "idle_rps": idle["rps"],
        "during_rps": during_rps,
        "during_runs": [round(run["rps"]) for run in during],
        "during_errors": sum(run["non2xx"] + run["socket_errors"] for run in during),
        "latency_max": max(latencies),
        "latency_p50": statistics.median(latencies),
        "still_accepted": still_200,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--revoke", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--smoke", action="store_true", help="10k tokens, 2,000 revoked")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.revoke, args.seconds = 10_000, 2_000, 3
    common.say(f"bench.jobs: {common.machine()}")
    result = run(args.size, args.revoke, seconds=args.seconds)
    ratio = result["during_rps"] / result["idle_rps"] if result["idle_rps"] else 0
    common.say(
        f"  job: {result['status']}, {result['revoked']:,} revoked of {result['processed']:,} "
        f"in {result['job_seconds']:.1f} s, {result['audit_events']:,} audit events\n"
        f"  gateway: idle {result['idle_rps']:.0f} req/s, during the job "
        f"{result['during_rps']:.0f} req/s ({ratio:.0%} of idle; runs {result['during_runs']}, "
        f"errors {result['during_errors']})\n"
        f"  sampled tokens: 401 at most {result['latency_max']:.2f} s after their revoked_at "
        f"(median {result['latency_p50']:.2f} s); still accepted after the job: "
        f"{result['still_accepted']}"
    )
    failed = (
        result["status"] != "done"
        or result["still_accepted"]
        or result["audit_events"] != result["revoked"]
        or result["revoked"] != args.revoke
        or result["during_errors"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
