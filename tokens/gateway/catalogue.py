"""The catalogue: every API, plan and app, kept in each process and named by a version in
the cache that any change of them replaces (``tokens.gateway.cache.purge_catalogue``)."""

import logging
import time
import uuid
from typing import NamedTuple

from tokens.conf import setting
from tokens.gateway import cache
from tokens.gateway.info import ApiGrant, AppInfo, TokenInfo
from tokens.gateway.paths import normalise_path
from tokens.models import Api, App, Plan

logger = logging.getLogger(__name__)


class Catalogue(NamedTuple):
    """The APIs, plans and apps that gateway answers name, as of one catalogue version.

    Kept in each process's memory: read on every check, changed rarely. Any change of
    an API, plan or app through the ORM sets a new version after it commits
    (``cache.purge_catalogue``), and every check reads the version before it answers,
    so no process answers from a catalogue older than such a change; changes that
    bypass the ORM (bulk SQL) are picked up within ``GATEWAY_CACHE_SECONDS``.
    """

    version: str | None
    loaded_at: float  # time.monotonic()
    index: dict[str, int]  # normalised base path → API id
    apis: dict[int, tuple[str, str, str]]  # id → (name, version, base path)
    plans: dict[int, tuple[str, int | None]]  # id → (name, rate limit)
    apps: dict[int, AppInfo]

    def knows(self, info: TokenInfo) -> bool:
        return info.app_id in self.apps and all(
            api_id in self.apis and plan_id in self.plans for api_id, plan_id in info.grants
        )

    def admits(self, info: TokenInfo) -> bool:
        """Whether the token's app lets it be used (an inactive app stops its tokens)."""
        app = self.apps.get(info.app_id)
        return app is not None and app.is_active

    def grant(self, info: TokenInfo, api_id: int | None) -> ApiGrant | None:
        for granted, plan_id in info.grants:
            if granted == api_id:
                return ApiGrant(api_id, *self.apis[api_id], *self.plans[plan_id])
        return None

    def grants(self, info: TokenInfo) -> list[ApiGrant]:
        """Every API of the token, ordered by name and version."""
        grants = [ApiGrant(a, *self.apis[a], *self.plans[p]) for a, p in info.grants]
        return sorted(grants, key=lambda grant: (grant.name, grant.version))


def _load_catalogue(version: str | None) -> Catalogue:
    index, apis = {}, {}
    for api_id, name, api_version, base_path in Api.objects.values_list(
        "id", "name", "version", "base_path"
    ):
        apis[api_id] = (name, api_version, base_path)
        path = normalise_path(base_path)
        if path is not None:
            index[path] = api_id
    plans = {
        plan_id: (name, rate_limit)
        for plan_id, name, rate_limit in Plan.objects.values_list("id", "name", "rate_limit")
    }
    apps = {
        app_id: AppInfo(*row)
        for app_id, *row in App.objects.values_list("id", "client_id", "name", "is_active")
    }
    return Catalogue(version, time.monotonic(), index, apis, plans, apps)


_catalogue = Catalogue(None, 0.0, {}, {}, {}, {})
_catalogue_epoch = None  # the Redis server lifetime it was read in (cache.server_epoch)


def catalogue(version, info: TokenInfo | None = None) -> Catalogue:
    """The catalogue for the cache's version ``version`` (reloaded when it differs from
    this process's, or is older than ``GATEWAY_CACHE_SECONDS``, or does not know what
    ``info`` names: an app or plan created since, which changes no version)."""
    global _catalogue, _catalogue_epoch
    kept = _catalogue
    # A version read from a Redis restarted from a snapshot, or from an old primary back in
    # charge, may be one this process kept before a change it never heard of: a catalogue
    # is kept only for the server lifetime it was read in.
    epoch = cache.server_epoch()
    if (
        version is not None
        and version != cache.PURGED
        and kept.version == version
        and _catalogue_epoch == epoch
        and time.monotonic() - kept.loaded_at < setting("GATEWAY_CACHE_SECONDS")
        and (info is None or kept.knows(info))
    ):
        return kept
    if version is None:  # first use, or evicted: start a version
        version = uuid.uuid4().hex
        try:
            if not cache.cache.add(cache.CATALOGUE_VERSION_KEY, version, None):
                version = cache.cache.get(cache.CATALOGUE_VERSION_KEY)
        except Exception as error:
            logger.warning("Cache unreachable, catalogue from the database: %r", error)
            version = None
    loaded = _load_catalogue(version)
    if version is not None and version != cache.PURGED:
        _catalogue, _catalogue_epoch = loaded, epoch
    return loaded


def match_api(path: str | None, index: dict[str, int]) -> int | None:
    """The id of the API whose base path is the longest prefix of ``path``, by segments."""
    if path is None:
        return None
    candidate = path
    while True:
        api_id = index.get(candidate)
        if api_id is not None:
            return api_id
        if candidate == "/":
            return None
        candidate = candidate.rsplit("/", 1)[0] or "/"
