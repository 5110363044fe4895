"""What a deployment must get right for "revoked means 401 everywhere" to hold.

Checked where an operator sees it: gunicorn refuses to start several workers that could
not share the gateway cache, its first worker logs what is wrong with Redis, and
``manage.py check --deploy`` reports the same (docs/gateway.md, "What a deployment must
configure").
"""

import logging

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)


def shared_cache_problem(processes: int) -> str | None:
    """Why ``processes`` processes of this configuration would disagree about a revoke.

    Only the portal's settings are judged (gunicorn.conf.py also serves the benchmarks'
    other projects); ``TOKEN_PORTAL["UNSHARED_CACHE_OK"]`` is for benchmarks that measure
    throughput on SQLite and never revoke while they measure (bench/settings.py).
    """
    portal = getattr(settings, "TOKEN_PORTAL", None)
    if processes <= 1 or portal is None or portal.get("UNSHARED_CACHE_OK"):
        return None
    if getattr(settings, "REDIS_URL", ""):
        return None
    return (
        f"{processes} worker processes without REDIS_URL: each keeps its own cache of gateway "
        "answers, so a revoke handled by one would not reach the others (they could accept the "
        "token for up to TOKEN_PORTAL_GATEWAY_CACHE_SECONDS). Set REDIS_URL, or run one worker."
    )


def refuse_several_processes_without_redis(processes: int) -> None:
    """gunicorn's ``on_starting``: no start at all rather than inconsistent answers (in
    debug mode a warning only, so that a laptop may try several workers)."""
    problem = shared_cache_problem(processes)
    if problem is None:
        return
    if not settings.DEBUG:
        raise SystemExit(f"Token Portal refuses to start: {problem}")
    logger.warning(problem)


def redis_problems() -> list[str]:
    """What in the configured Redis would let a revoke be undone (none without Redis)."""
    from django.core.cache import cache

    probe = getattr(cache, "server_problems", None)
    if probe is None:
        return []
    try:
        return probe()
    except Exception as error:  # unreachable now: said, not fatal (checks use the database)
        return [f"Redis at REDIS_URL cannot be reached to check its configuration: {error!r}"]


def log_redis_problems() -> None:
    for problem in redis_problems():
        logger.warning(problem)


@checks.register(checks.Tags.caches, deploy=True)
def check_redis(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Warning(problem, id="token_portal.W001", hint="See docs/gateway.md.")
        for problem in redis_problems()
    ]
