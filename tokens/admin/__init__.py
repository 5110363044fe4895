"""Django admin for support staff: tokens (find, history, revoke) and the catalogue (apps,
APIs, plans).

``mixins`` holds what the admins share; ``tokens`` (with ``revoke``) and ``audit`` the
tokens and their history; ``catalogue`` the APIs, plans and apps. Importing them
registers the ModelAdmins.
"""

from django.contrib import admin

from tokens.admin import (  # noqa: F401 (registers the ModelAdmins)
    audit,
    catalogue,
    incident,
    notifications,
    tokens,
)

admin.site.site_header = "Token Portal administration"
admin.site.site_title = "Token Portal admin"
