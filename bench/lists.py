"""Figure 3: the portal's Access Tokens list and Django admin's changelist at scale.

    .venv/bin/python -m bench.lists [--sizes 10000 1000000] [--backends sqlite postgresql]
                                    [--repeat 7] [--smoke] [--fresh]

Server-side time of each page (Django's test client in one process against the bench
data set: the view, its queries and the template, no HTTP), p50 of ``--repeat`` runs
after two warm-up runs, with the number of queries per page. The SQL of each page's
row query is explained (PostgreSQL: EXPLAIN ANALYZE; SQLite: EXPLAIN QUERY PLAN) into
``BENCH_DIR/explain-<backend>-<size>.txt``.

``--fresh`` builds the data sets again (needed after a migration changes the schema).
On PostgreSQL the token tables are vacuumed first: the local server runs without
autovacuum, and without a visibility map no index-only scan is possible (a production
server's autovacuum sets it soon after a bulk load).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench import common

TARGET_MS = 60


def cases(known: dict, ids: dict) -> list[tuple[str, str, str]]:
    secret = known["secrets"][0]
    portal, admin = "/tokens/", "/admin/tokens/accesstoken/"
    return [
        ("first page", portal, ""),
        ("status=revoked", portal, "status=revoked"),
        ("status=expired", portal, "status=expired"),
        ("app", portal, f"app={ids['app']}"),
        ("API", portal, f"api={ids['api']}"),
        ("origin=oauth", portal, "origin=oauth"),
        ("code prefix", portal, f"q={secret[:9]}"),
        ("full token", portal, f"q={secret}"),
        ("owner, common", portal, "q=souza"),
        ("owner, rare", portal, "q=souza%40acme.example+%2342424"),
        ("sort owner", portal, "o=owner"),
        ("sort -expires", portal, "o=-expires"),
        ("sort last_used", portal, "o=last_used"),
        ("sort code", portal, "o=code"),
        ("sort app", portal, "o=app"),
        ("admin first page", admin, ""),
        ("admin status=revoked", admin, "status=revoked"),
        ("admin app", admin, f"app__id__exact={ids['app']}"),
        ("admin API", admin, f"api={ids['api']}"),
        ("admin origin=oauth", admin, "origin__exact=oauth"),
        ("admin code prefix", admin, f"q={secret[:9]}"),
        ("admin full token", admin, f"q={secret}"),
        ("admin owner, common", admin, "q=souza"),
        ("admin owner, rare", admin, "q=souza%40acme.example+%2342424"),
        ("admin sort app", admin, "o=3"),  # the App column (after the checkbox, Code, Owner)
    ]


def worker(backend: str, size: int, repeat: int) -> dict:
    """Runs inside a process whose environment selects the data set."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tokens.models import Api, App

    known = json.loads((common.BENCH_DIR / f"{backend}-{size}.json").read_text())
    ids = {
        "app": App.objects.get(name="Acme Checkout").pk,
        "api": Api.objects.get(base_path="/orders").pk,
    }
    users = get_user_model().objects
    portal, support = Client(), Client()
    portal.force_login(users.get(username="admin"))
    support.force_login(users.get(username="support"))
    results, plans = {}, []
    for name, path, query in cases(known, ids):
        client = support if path.startswith("/admin/") else portal
        url = f"{path}?{query}" if query else path
        response = client.get(url)
        if response.status_code == 302:  # admin: a pasted token is searched by its prefix
            url = response["Location"]
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        client.get(url)
        times, cpu = [], []
        for _ in range(repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            with CaptureQueriesContext(connection) as queries:
                client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        rows_sql = max(
            (q["sql"] for q in queries.captured_queries if "tokens_accesstoken" in q["sql"]),
            key=lambda sql: ("LIMIT" in sql.upper(), len(sql)),
        )
        with connection.cursor() as cursor:
            prefix = (
                "EXPLAIN (ANALYZE, COSTS OFF) "
                if connection.vendor == "postgresql"
                else "EXPLAIN QUERY PLAN "
            )
            cursor.execute(prefix + rows_sql)
            plan = "\n".join(" | ".join(str(c) for c in row) for row in cursor.fetchall())
        plans.append(f"## {name}: {url}\n\n{rows_sql}\n\n{plan}\n")
        results[name] = {
            "url": url,
            "p50_ms": statistics.median(times),
            "max_ms": max(times),
            # This process's CPU only (the page's Python, and SQLite's work, which runs
            # in-process; not PostgreSQL's): less sensitive to other load than p50.
            "cpu_p50_ms": statistics.median(cpu),
            "queries": len(queries.captured_queries),
        }
        print(
            f"  {backend} {size:>9,} {name:<22} p50 {results[name]['p50_ms']:7.1f} ms "
            f"(max {results[name]['max_ms']:7.1f}, cpu {results[name]['cpu_p50_ms']:6.1f})  "
            f"{results[name]['queries']:2d} queries"
            f"  (load {common.load()})",
            flush=True,
        )
    (common.BENCH_DIR / f"explain-{backend}-{size}.txt").write_text("\n".join(plans))
    return results


def vacuum(database: str) -> None:
    subprocess.run(
        [
            "psql",
            f"{common.PG_URL}/{database}",
            "-qc",
            "VACUUM (ANALYZE) tokens_accesstoken, tokens_tokenapi, tokens_app",
        ],
        check=True,
        capture_output=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", default=list(common.BACKENDS))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="build the data sets again")
    parser.add_argument("--worker", nargs=2, metavar=("BACKEND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        backend, size = args.worker[0], int(args.worker[1])
        out = common.BENCH_DIR / f"lists-{backend}-{size}.json"
        out.write_text(json.dumps(worker(backend, size, args.repeat)))
        return 0
    if args.smoke:
        args.sizes, args.repeat = [10_000], 3
    common.say(f"lists bench: {common.machine()}")
    results = {}
    for backend in args.backends:
        for size in args.sizes:
            env, _ = common.portal_dataset(backend, size, fresh=args.fresh)
            env.update(DJANGO_ALLOWED_HOSTS="testserver,127.0.0.1")
            if backend == "postgresql":
                vacuum(f"{common.DB_PREFIX}_{size}")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.lists",
                    "--worker",
                    backend,
                    str(size),
                    "--repeat",
                    str(args.repeat),
                ],
                env=env,
                cwd=common.BASE_DIR,
                check=True,
                timeout=1800,
            )
            out = common.BENCH_DIR / f"lists-{backend}-{size}.json"
            results[(backend, size)] = json.loads(out.read_text())
    for (backend, size), figures in results.items():
        common.say(
            f"\n{backend}, {size:,} tokens: p50 ms (target ≤ {TARGET_MS}), queries, "
            "this process's CPU ms (p50)"
        )
        for name, fig in figures.items():
            mark = "ok " if fig["p50_ms"] <= TARGET_MS else "MISS"
            common.say(
                f"  {mark} {name:<22} {fig['p50_ms']:7.1f} {fig['queries']:3d}"
                f"   cpu {fig['cpu_p50_ms']:6.1f}"
            )
    sizes = sorted({size for _, size in results})
    if len(sizes) > 1:
        for backend in args.backends:
            small, big = results[(backend, sizes[0])], results[(backend, sizes[-1])]
            growth = big["first page"]["p50_ms"] / small["first page"]["p50_ms"]
            common.say(f"  flat cost {backend}: first page p50 × {growth:.2f} (target < 2)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    raise SystemExit(main())
