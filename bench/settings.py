"""Bench-only settings: the portal's own settings and middleware, plus ``/bench/bare``.

Never used in production: the production URLconf has no benchmark route.
"""

import os

from portal.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405 - its management commands

# Two workers on SQLite without Redis measure throughput; nothing is revoked while they
# measure (bench.consistency runs on PostgreSQL + Redis). portal.deployment allows it here.
TOKEN_PORTAL = {**TOKEN_PORTAL, "UNSHARED_CACHE_OK": True}  # noqa: F405
ROOT_URLCONF = "bench.urls"

# The "cold" figure: a cache that never holds a gateway answer (bench/cache.py).
if os.environ.get("BENCH_COLD_TOKENS"):
    _redis = CACHES["default"]["BACKEND"].endswith("RedisCache")  # noqa: F405
    CACHES["default"]["BACKEND"] = f"bench.cache.Cold{'Redis' if _redis else 'LocMem'}Cache"  # noqa: F405

# Pages are measured in-process too (bench/lists.py), without a collectstatic step: the
# manifest storage's lookup costs the same as this one's.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
