"""The WSGI application gunicorn serves (``gunicorn portal.wsgi``).

The gateway's per-request endpoints are answered before Django's handler, by the same
views (``tokens.fastpath``); everything else is Django's ``WSGIHandler`` as usual.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_application = get_wsgi_application()

from tokens.fastpath import GatewayFastPath  # noqa: E402 - needs the apps loaded

application = GatewayFastPath(django_application)
