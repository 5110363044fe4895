"""Bench-only: the bare view's second baseline, behind Django's default middleware.

``/bench/bare`` behind the middleware list of Django's ``startproject`` template (no
whitenoise, two-factor, security-log or CSP middleware): the baseline the issue names.
The portal's own stack (``bench.settings``) is the other, slower baseline.
"""

from bench.settings import *  # noqa: F403

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
