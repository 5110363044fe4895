"""Figure 5: no check admits a token after its revoke returned (2 servers sharing Redis).

    .venv/bin/python -m bench.consistency [--pairs 10000] [--smoke]

Two gunicorn servers (2 sync workers each) on one PostgreSQL database and one Redis.
Each pair: a check on one server (fills the shared cache with "active"), the owning
client's RFC 7009 revoke on the other, and at once a check back on the first, which
must answer 401. Meanwhile background threads check the tokens being worked on against
both servers as fast as they can, racing the cache fills against the purges; any of
their checks *sent* after the token's revoke returned must answer 401 too. Exit
status 1 on any admit after a revoke, or on an unexpected answer.
"""

import argparse
import base64
import json
import random
import threading
import time

import requests

from bench import common

PAIR_THREADS = 4
BACKGROUND_THREADS = 3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="a few hundred pairs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pairs = 400
    common.say(f"consistency bench: {common.machine()}")
    name = f"{common.DB_PREFIX}_consistency"
    env = common.portal_env(
        "postgresql",
        0,
        DATABASE_URL=common.database_url("postgresql", name),
        TOKEN_PORTAL_RATE_LIMIT_REVOKE="",
        TOKEN_PORTAL_RATE_LIMIT_INTROSPECT="",
        TOKEN_PORTAL_GATEWAY_CACHE_SECONDS="300",
    )
    common.create_database("postgresql", name)
    common.manage("migrate", "--no-input", "-v0", env=env)
    common.manage("seed_demo", "--quiet-login", env=env)
    known_path = common.BENCH_DIR / "consistency.json"
    common.manage("bench_tokens", "--count", str(args.pairs), "--out", str(known_path), env=env)
    known = json.loads(known_path.read_text())
    secrets = known["secrets"]
    payer = known["payer"]
    basic = (
        "Basic "
        + base64.b64encode(f"{payer['client_id']}:{payer['client_secret']}".encode()).decode()
    )
    uri = known["base_path"] + "/charges"

    revoked_at: dict[int, float] = {}
    progress = [0] * PAIR_THREADS
    failures: list[str] = []
    background: list[tuple[int, float, int]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def check(session, base_url, secret) -> int:
        return session.get(
            base_url + "/gateway/auth",
            headers={"Authorization": f"Bearer {secret}", "X-Original-URI": uri},
            timeout=30,
        ).status_code

    def pairs(worker: int, urls: tuple[str, str]):
        session = requests.Session()
        for index in range(worker, args.pairs, PAIR_THREADS):
            checker, revoker = urls if index % 2 else urls[::-1]
            secret = secrets[index]
            status = check(session, checker, secret)
            if status != 200:
                failures.append(f"token {index}: first check answered {status}")
            answer = session.post(
                revoker + "/oauth/revoke/",
                data={"token": secret},
                headers={"Authorization": basic},
                timeout=30,
            )
            with lock:
                revoked_at[index] = time.monotonic()
            if answer.status_code != 200:
                failures.append(f"token {index}: revoke answered {answer.status_code}")
            status = check(session, checker, secret)
            if status != 401:
                failures.append(f"token {index}: ADMITTED after its revoke ({status})")
            progress[worker] = index

    def hammer(urls: tuple[str, str]):
        session = requests.Session()
        rng = random.Random()
        while not stop.is_set():
            worker = rng.randrange(PAIR_THREADS)
            index = min(progress[worker] + PAIR_THREADS * rng.randrange(0, 3), args.pairs - 1)
            sent = time.monotonic()
            status = check(session, rng.choice(urls), secrets[index])
            with lock:
                background.append((index, sent, status))

    started = time.monotonic()
    try:
        with common.gunicorn(env) as first, common.gunicorn(env) as second:
            urls = (first, second)
            threads = [
                threading.Thread(target=hammer, args=(urls,)) for _ in range(BACKGROUND_THREADS)
            ]
            workers = [threading.Thread(target=pairs, args=(n, urls)) for n in range(PAIR_THREADS)]
            for thread in threads + workers:
                thread.start()
            deadline = time.monotonic() + 3600
            for thread in workers:
                thread.join(timeout=max(1, deadline - time.monotonic()))
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
    finally:
        stop.set()
        common.flush_redis_prefix(env)
    elapsed = time.monotonic() - started
    late_admits = [
        (index, sent)
        for index, sent, status in background
        if status == 200 and index in revoked_at and sent > revoked_at[index]
    ]
    unexpected = [status for _, _, status in background if status not in (200, 401)]
    admits = [failure for failure in failures if "ADMITTED" in failure]
    common.say(
        f"  {len(revoked_at)} revoke-then-check pairs in {elapsed:.0f} s; "
        f"{len(background)} concurrent background checks (load {common.load()})\n"
        f"  admits after revoke: {len(admits)} in the pairs, {len(late_admits)} in the "
        f"background checks (target 0); other failures: "
        f"{len(failures) - len(admits)}; unexpected background answers: {len(unexpected)}"
    )
    for failure in failures[:10]:
        common.say("   ", failure)
    ok = not failures and not late_admits and not unexpected and len(revoked_at) == args.pairs
    common.say("consistency: OK" if ok else "consistency: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
