"""Export CSV at scale: rows per second and memory of ``GET /tokens/export.csv``.

    .venv/bin/python -m bench.export [--size 1000000] [--fresh] [--skip-server]

On PostgreSQL (``BENCH_PG_URL``, database ``BENCH_EXPORT_DB``, ``tp_export_bench`` by
default; built once with ``seed_demo --tokens N``, reused while it holds N tokens).
Each figure runs in a fresh process of its own and reports rows/s and that process's
RSS growth (peak ``VmHWM`` minus ``VmRSS`` before the export, from ``/proc``):

- ``baseline``: a plain ``values_list(<the list's columns>).iterator(chunk_size=2000)``
  loop writing CSV to nowhere: what reading the rows costs, the floor.
- ``export``: the portal's rows (``tokens.export.csv_bytes`` over the list's filter, as
  the view streams them), in autocommit: Django's server-side cursor is ``WITH HOLD``.
- ``export-atomic``: the same inside a transaction (a cursor without ``WITH HOLD``).
- ``export-keyset``: the same rows read by keyset pagination on (created, id), pages of
  2,000, no server-side cursor (``DISABLE_SERVER_SIDE_CURSORS`` or a transaction pooler).
- ``server``: the real thing, through gunicorn (1 sync worker, DJANGO_DEBUG=0), the body
  read by ``requests``; RSS of the worker process.

Target (issue 14): ≥ 50,000 rows/s and RSS growth < 100 MB at 1M tokens.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import common
from tests.e2e import servers

DB_NAME = os.environ.get("BENCH_EXPORT_DB", "tp_export_bench")
VARIANTS = ("baseline", "export", "export-atomic", "export-keyset")


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def _env(size: int) -> dict[str, str]:
    return servers.portal_env(
        DATABASE_URL=common.database_url("postgresql", DB_NAME),
        TOKEN_PORTAL_ALLOW_DEMO="1",
        TOKEN_PORTAL_REQUIRE_MFA="0",
        DJANGO_LOG_LEVEL="WARNING",
    )


def _count(env) -> int:
    done = subprocess.run(
        ["psql", env["DATABASE_URL"], "-tAc", "SELECT count(*) FROM tokens_accesstoken"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else -1


def dataset(size: int, *, fresh: bool) -> dict[str, str]:
    env = _env(size)
    if fresh or _count(env) != size:
        common.say(f"  building {DB_NAME} with {size:,} tokens (load {common.load()})")
        common.create_database("postgresql", DB_NAME)
        common.manage("migrate", "--no-input", "-v0", env=env)
        started = time.monotonic()
        common.manage("seed_demo", "--tokens", str(size), env=env, timeout=1800)
        common.say(f"  seeded in {time.monotonic() - started:.1f} s")
    # The local server runs without autovacuum: statistics and visibility map by hand.
    for table in ("tokens_accesstoken", "tokens_tokenapi"):
        subprocess.run(["psql", env["DATABASE_URL"], "-qc", f"VACUUM ANALYZE {table}"], check=True)
    return env


# --- In one process: python -m bench.export --inner VARIANT --------------------------------


class _Sink:
    def write(self, text):
        return len(text)


def _inner(variant: str) -> dict:
    import django

    django.setup()
    import csv

    from django.db import transaction
    from django.http import QueryDict

    from tokens import export
    from tokens.filters import token_filter
    from tokens.models import AccessToken

    def keyset_values():
        """The rows of the default sort (-created, -id), a page of 2,000 at a time."""
        from django.utils import timezone

        base = (
            export._annotated(AccessToken.objects.all(), timezone.now())
            .order_by("-created_at", "-id")
            .values_list(*export.FIELDS, "created_at")
        )
        page = list(base[: export.CHUNK_SIZE])
        while page:
            yield from (row[:-1] for row in page)
            created, pk = page[-1][-1], page[-1][0]
            # A row comparison, which PostgreSQL reads as one range of the (created, id)
            # index; the same condition spelled with OR made it scan from the top each page.
            after = base.extra(  # noqa: S610 (bench only, parameters bound)
                where=["(created_at, tokens_accesstoken.id) < (%s, %s)"], params=[created, pk]
            )
            page = list(after[: export.CHUNK_SIZE])

    before = _status(os.getpid())["VmRSS"]
    started = time.perf_counter()
    rows = size = 0
    if variant == "baseline":
        writer = csv.writer(_Sink())
        values = (
            AccessToken.objects.order_by("-created_at", "-id")
            .values_list(
                "prefix",
                "suffix",
                "owner",
                "app_name",
                "revoked_at",
                "created_at",
                "expires_at",
                "last_used_at",
            )
            .iterator(chunk_size=export.CHUNK_SIZE)
        )
        for row in values:
            size += writer.writerow(row)
            rows += 1
    else:
        if variant == "export-keyset":
            chunks = export.encode(export.rows_of_values(keyset_values()))
        else:
            chunks = export.csv_bytes(token_filter(QueryDict()).qs)
        if variant == "export-atomic":
            with transaction.atomic():
                for chunk in chunks:
                    size += len(chunk)
                    rows += chunk.count(b"\r\n")
        else:
            for chunk in chunks:
                size += len(chunk)
                rows += chunk.count(b"\r\n")
        rows -= 1  # the header
    seconds = time.perf_counter() - started
    after = _status(os.getpid())
    return {
        "variant": variant,
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "rss_growth_mb": (after["VmHWM"] - before) / 2**20,
    }


def in_process(variant: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [common.python(), "-m", "bench.export", "--inner", variant],
        cwd=common.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Through gunicorn -------------------------------------------------------------------------


def _login(base_url: str) -> str:
    """The Cookie header of a logged-in demo administrator. The cookies are Secure (DEBUG
    off) and requests would not send them over plain HTTP: the header is written by hand."""
    import requests

    page = requests.get(f"{base_url}/accounts/login/", timeout=30)
    if "csrfmiddlewaretoken" not in page.text:
        raise RuntimeError(f"login page answered {page.status_code}: {page.text[:500]}")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    cookies = dict(page.cookies)
    answer = requests.post(
        f"{base_url}/accounts/login/",
        data={"csrfmiddlewaretoken": csrf, "username": "admin", "password": "portal-demo-2026"},
        headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "Referer": f"{base_url}/accounts/login/",
        },
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"login answered {answer.status_code}")
    cookies.update(answer.cookies)
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def through_server(env: dict[str, str]) -> dict:
    import requests

    port = servers.free_port()
    args = [
        common.python(),
        "-m",
        "gunicorn",
        "portal.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--timeout",
        "600",
    ]
    base_url = f"http://127.0.0.1:{port}"
    common.manage("collectstatic", "--no-input", "-v0", env=env)  # DEBUG off: the manifest
    with servers.running(args, port=port, env=env, timeout=60) as master:
        cookie = _login(base_url)
        (worker,) = _children(master.pid)
        headers = {"Cookie": cookie}
        warm = requests.get(f"{base_url}/tokens/export.csv?q=nobody", headers=headers, timeout=60)
        warm.raise_for_status()
        # The login's Argon2 hash (about 100 MB, freed) set the worker's peak: reset it
        # (Linux: 5 > clear_refs), so that VmHWM is the export's peak alone.
        Path(f"/proc/{worker}/clear_refs").write_text("5")
        before = _status(worker)["VmRSS"]
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.wait(0.05):
                peak.append(_status(worker)["VmRSS"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        rows = size = 0
        with requests.get(
            f"{base_url}/tokens/export.csv", headers=headers, stream=True, timeout=600
        ) as answer:
            answer.raise_for_status()
            first_byte = time.perf_counter() - started
            last = b""
            for chunk in answer.iter_content(chunk_size=1 << 16):
                size += len(chunk)
                rows += (last + chunk[:1] == b"\r\n") + chunk.count(b"\r\n")
                last = chunk[-1:]
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        status = _status(worker)
    rows -= 1
    return {
        "variant": "server",
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "first_byte_s": first_byte,
        "rows_per_s": rows / seconds,
        "rss_growth_mb": (max(max(peak), status["VmHWM"]) - before) / 2**20,
        "rss_sampled_growth_mb": (max(peak) - before) / 2**20,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--inner", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        print(json.dumps(_inner(args.inner)))
        return 0
    common.say(f"bench.export: {common.machine()}")
    env = dataset(args.size, fresh=args.fresh)
    results = []
    for variant in args.variants:
        results.append(in_process(variant, env))
        common.say(f"  {results[-1]}")
    if not args.skip_server:
        results.append(through_server(env))
        common.say(f"  {results[-1]}")
    common.say(f"{'figure':<15} {'rows':>9} {'MB':>7} {'s':>7} {'rows/s':>9} {'RSS +MB':>8}")
    for r in results:
        common.say(
            f"{r['variant']:<15} {r['rows']:>9,} {r['bytes'] / 2**20:>7.1f} {r['seconds']:>7.2f}"
            f" {r['rows_per_s']:>9,.0f} {r['rss_growth_mb']:>8.1f}"
            + (f"  (first byte {r['first_byte_s']:.2f} s)" if "first_byte_s" in r else "")
        )
    common.say(f"load after: {common.load()}")
    failed = [
        r["variant"]
        for r in results
        if r["variant"] in ("export", "server")
        and (r["rows"] != args.size or r["rss_growth_mb"] >= 100)
    ]
    if failed:
        common.say(f"FAILED (rows or memory): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
