"""What the gateway check knows of a token, and how its answers are named."""

from typing import NamedTuple

REALM = "token-portal"
INACTIVE = "inactive"  # cached answer for a known token that is revoked or expired: final


class ApiGrant(NamedTuple):
    """One API of an active token, with its plan, as the catalogue names them now."""

    api_id: int
    name: str
    version: str
    base_path: str
    plan: str
    rate_limit: int | None


class TokenInfo(NamedTuple):
    """What a gateway learns about an active token (cached as is: keep it small).

    Only the token's own state: its app, APIs and plans are ids, named by the catalogue
    (``catalogue``), so a change of an app (deactivated, renamed), a plan or an API
    reaches every answer at once, without purging any token's entry.
    """

    token_id: int
    public_id: str
    app_id: int
    owner: str
    issued_at: int  # seconds since the epoch
    expires_at: float | None  # seconds since the epoch; None: never
    grants: tuple[tuple[int, int], ...]  # (api id, plan id)

    def is_live(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


class AppInfo(NamedTuple):
    client_id: str
    name: str
    is_active: bool
