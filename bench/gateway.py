"""Figures 1 and 2: the gateway check against a bare Django view and django-oauth-toolkit.

    .venv/bin/python -m bench.gateway [--sizes 10000 1000000] [--backends sqlite postgresql]
                                      [--seconds 10] [--rounds 3] [--smoke]

Per backend and size, four servers run side by side (gunicorn, 2 sync workers):
the portal with its default cache ("warm": answers cached), the portal whose cache
never holds a token answer ("cold": every check one cache miss and the database),
django-oauth-toolkit's introspection over its own tables with as many tokens, and the
bare view behind Django's default middleware (``bench.settings_plain``, "bare_plain").
The ratios are to the bare view behind the portal's own middleware ("bare") and, the
stricter figure, to "bare_plain". Rounds
interleave the endpoints, so a burst of load from elsewhere hits them all alike; each
figure is the median of its rounds, beside the load average of each run.
"""

import argparse
import base64
import contextlib
import json

from bench import common

ENDPOINTS = (
    "bare",
    "bare_plain",
    "gateway_warm",
    "introspect_warm",
    "gateway_cold",
    "introspect_cold",
    "dot",
)


def basic(client: dict) -> str:
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def run(backend: str, size: int, *, seconds: float, rounds: int, fresh: bool) -> dict:
    env, known = common.portal_dataset(backend, size, fresh=fresh)
    dot_env, dot_known = common.dot_dataset(backend, size, fresh=fresh)
    secrets = common.secrets_file(known["secrets"], f"secrets-{backend}-{size}")
    dot_secrets = common.secrets_file(dot_known["secrets"], f"dot-secrets-{backend}-{size}")
    cold_env = dict(env, BENCH_COLD_TOKENS="1")
    gateway_auth = basic(known["gateway"])
    uri = known["base_path"] + "/charges"
    runs = {name: [] for name in ENDPOINTS}
    try:
        with contextlib.ExitStack() as stack:
            warm = stack.enter_context(common.gunicorn(env))
            cold = stack.enter_context(common.gunicorn(cold_env))
            dot = stack.enter_context(common.gunicorn(dot_env, app="bench.dot.wsgi:application"))
            plain_env = dict(env, DJANGO_SETTINGS_MODULE="bench.settings_plain")
            plain = stack.enter_context(common.gunicorn(plain_env))
            plan = {
                "bare": (warm, "bare", {}),
                "bare_plain": (plain, "bare", {}),
                "gateway_warm": (warm, "gateway", {"BENCH_URI": uri}),
                "introspect_warm": (warm, "introspect", {"BENCH_AUTH": gateway_auth}),
                "gateway_cold": (cold, "gateway", {"BENCH_URI": uri}),
                "introspect_cold": (cold, "introspect", {"BENCH_AUTH": gateway_auth}),
                "dot": (dot, "dot", {"BENCH_AUTH": "Bearer " + dot_known["caller"]}),
            }
            # Warm up: connections, caches, and each worker's first use of each token,
            # which writes its "last used" (then at most once a minute per token and
            # worker): 2,000 tokens in each of 2 workers take several seconds of checks.
            for url, mode, extra in plan.values():
                tokens = dot_secrets if mode == "dot" else secrets
                warmup = 2 if mode in ("bare", "dot") else max(2, min(8, seconds))
                common.wrk(url, mode, seconds=warmup, secrets=tokens, **extra)
            for number in range(1, rounds + 1):
                for name, (url, mode, extra) in plan.items():
                    tokens = dot_secrets if mode == "dot" else secrets
                    result = common.wrk(url, mode, seconds=seconds, secrets=tokens, **extra)
                    runs[name].append(result)
                    common.say(
                        f"  {backend} {size:>9,} round {number} {name:<16} "
                        f"{result['rps']:7.0f} req/s  p50 {result['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {result['p99_us'] / 1000:6.2f} ms  "
                        f"server CPU {result['cpu_us']:5.0f} µs/req  errors "
                        f"{result['non2xx'] + result['socket_errors']}  (load {result['load']})"
                    )
    finally:
        common.flush_redis_prefix(env)
        common.flush_redis_prefix(cold_env)
    return {name: common.median_of(results) for name, results in runs.items()}


def report(results: dict) -> list[str]:
    lines = []
    for (backend, size), figures in results.items():
        bare, plain, dot = figures["bare"], figures["bare_plain"], figures["dot"]
        lines.append(f"\n{backend}, {size:,} tokens (medians; req/s of each run in brackets)")
        lines.append(
            f"  {'endpoint':<16} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'× bare':>7} {'p99 × bare':>10} {'× plain':>7} {'p99 × plain':>11} "
            f"{'× DOT':>6} {'CPU µs':>6} {'CPU × bare':>10}  errors  runs"
        )
        for name, fig in figures.items():
            lines.append(
                f"  {name:<16} {fig['rps']:7.0f} {fig['p50_ms']:7.2f} {fig['p99_ms']:7.2f} "
                f"{fig['rps'] / bare['rps']:7.2f} {fig['p99_ms'] / bare['p99_ms']:10.2f} "
                f"{fig['rps'] / plain['rps']:7.2f} {fig['p99_ms'] / plain['p99_ms']:11.2f} "
                f"{fig['rps'] / dot['rps']:6.2f} {fig['cpu_us']:6.0f} "
                f"{bare['cpu_us'] / fig['cpu_us']:10.2f}  {fig['errors']:6d}  {fig['runs']}"
            )
    by_backend = {}
    for (backend, size), figures in results.items():
        by_backend.setdefault(backend, {})[size] = figures
    for backend, sizes in by_backend.items():
        if len(sizes) < 2:
            continue
        small, big = min(sizes), max(sizes)
        for name in ("gateway_warm", "gateway_cold", "introspect_warm", "introspect_cold"):
            drop = 1 - sizes[big][name]["rps"] / sizes[small][name]["rps"]
            lines.append(
                f"  flat cost {backend} {name}: {small:,} → {big:,} tokens: "
                f"{drop:+.1%} throughput drop (target < 10%)"
            )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", default=list(common.BACKENDS))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="rebuild the data sets")
    parser.add_argument("--smoke", action="store_true", help="10k tokens, 1 short round")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.seconds, args.rounds = [10_000], 3, 1
    common.say(f"gateway bench: {common.machine()}")
    results = {}
    for backend in args.backends:
        for size in args.sizes:
            results[(backend, size)] = run(
                backend, size, seconds=args.seconds, rounds=args.rounds, fresh=args.fresh
            )
    for line in report(results):
        common.say(line)
    out = common.BENCH_DIR / "gateway.json"
    out.write_text(json.dumps({f"{b} {s}": f for (b, s), f in results.items()}, indent=1))
    errors = sum(fig["errors"] for figures in results.values() for fig in figures.values())
    if errors:
        common.say(f"FAILED: {errors} requests answered with an error")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
