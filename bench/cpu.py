"""Supplement to figure 1: CPU time per request inside one process, no HTTP, no wrk.

    .venv/bin/python -m bench.cpu [--size 10000] [--backend sqlite] [--requests 5000]

Calls the WSGI application that gunicorn serves (``portal.wsgi``, bench settings)
directly and divides the process's CPU time by the requests: a figure that other
load on the machine barely moves, unlike wrk's throughput. Warm: cached answers;
cold: the token cache never answers (bench/cache.py).
"""

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import time

from bench import common

MODES = ("bare", "gateway", "introspect")


def worker(backend: str, size: int, requests: int) -> dict:
    from portal.wsgi import application as app  # what gunicorn serves

    known = json.loads((common.BENCH_DIR / f"{backend}-{size}.json").read_text())
    secrets = known["secrets"]
    gateway = known["gateway"]
    auth = (
        "Basic "
        + base64.b64encode(f"{gateway['client_id']}:{gateway['client_secret']}".encode()).decode()
    )
    uri = known["base_path"] + "/charges"

    def environ(mode: str, index: int) -> dict:
        env = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/bench/bare",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
        }
        secret = secrets[index % len(secrets)]
        if mode == "gateway":
            env.update(
                PATH_INFO="/gateway/auth",
                HTTP_AUTHORIZATION=f"Bearer {secret}",
                HTTP_X_ORIGINAL_URI=uri,
            )
        elif mode == "introspect":
            body = f"token={secret}".encode()
            env.update(
                REQUEST_METHOD="POST",
                PATH_INFO="/oauth/introspect/",
                HTTP_AUTHORIZATION=auth,
                CONTENT_TYPE="application/x-www-form-urlencoded",
                CONTENT_LENGTH=str(len(body)),
            )
            env["wsgi.input"] = io.BytesIO(body)
        return env

    statuses = []

    def start_response(status, headers):
        statuses.append(status)

    results = {}
    for mode in MODES:
        for index in range(len(secrets)):  # warm: every token once
            b"".join(app(environ(mode, index), start_response))
        statuses.clear()
        started = time.process_time()
        for index in range(requests):
            b"".join(app(environ(mode, index), start_response))
        results[mode] = (time.process_time() - started) / requests * 1e6
        assert all(status.startswith("200") for status in statuses), set(statuses)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--backend", default="sqlite", choices=common.BACKENDS)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("CPUJSON " + json.dumps(worker(args.backend, args.size, args.requests)))
        return 0
    env, _ = common.portal_dataset(args.backend, args.size)
    figures = {}
    for cold in (False, True):
        run_env = dict(env, BENCH_COLD_TOKENS="1") if cold else env
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.cpu",
                "--worker",
                "--size",
                str(args.size),
                "--backend",
                args.backend,
                "--requests",
                str(args.requests),
            ],
            env=run_env,
            cwd=common.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        line = next(x for x in done.stdout.splitlines() if x.startswith("CPUJSON "))
        for mode, micros in json.loads(line[8:]).items():
            if not (cold and mode == "bare"):
                figures[f"{mode}{' cold' if cold else (' warm' if mode != 'bare' else '')}"] = (
                    micros
                )
    common.say(f"CPU per request, {args.backend}, {args.size:,} tokens (load {common.load()}):")
    for name, micros in figures.items():
        common.say(f"  {name:<16} {micros:6.0f} µs  ({figures['bare'] / micros:4.2f}× bare's rate)")
    common.flush_redis_prefix(env)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    raise SystemExit(main())
