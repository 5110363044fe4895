"""The django-oauth-toolkit baseline: a separate, bench-only Django project.

Django's default project (``startproject``'s middleware) with DOT's RFC 7662
introspection endpoint over its own tables. Same database engines, connection
persistence and gunicorn set-up as the portal's bench, so the two compare fairly.
"""

import os

import dj_database_url

DEBUG = False
SECRET_KEY = "bench-dot-only-" + "x" * 40
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "bench.dot",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bench.dot.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": dj_database_url.config(
        env="DOT_DATABASE_URL",
        default="sqlite:////tmp/tp-bench/dot.sqlite3",
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
OAUTH2_PROVIDER = {"SCOPES": {"read": "Read", "introspection": "Introspect tokens"}}
LOGGING = {"version": 1, "root": {"level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")}}
