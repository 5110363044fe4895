"""Bench-only: the bare view's second baseline, behind Django's default middleware.

``/bench/bare`` behind the middleware list of Django's ``startproject`` template (no
whitenoise, two-factor, security-log or CSP middleware): the baseline the issue names.
The portal's own stack (``bench.settings``) is the other, slower baseline.
"""

from bench.dot import settings as _startproject  # DOT's baseline project: that very list
from bench.settings import *  # noqa: F403

MIDDLEWARE = list(_startproject.MIDDLEWARE)
