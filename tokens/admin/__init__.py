"""Django admin for support staff: tokens (find, history, revoke) and the catalogue (apps,
APIs, plans)."""

from tokens.admin import tokens  # noqa: F401 (registers the ModelAdmins)
