"""django-oauth-toolkit's bench project, served as Django serves any project."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.dot.settings")
application = get_wsgi_application()
