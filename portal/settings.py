"""Token Portal settings: one module, configured by environment variables only.

Every variable has a safe local default so that a laptop needs nothing but Python:
SQLite and a local-memory cache. Production sets DJANGO_DEBUG=0, a real
DJANGO_SECRET_KEY, DATABASE_URL (PostgreSQL) and REDIS_URL (shared cache).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

_INSECURE_DEV_KEY = "django-insecure-local-development-only-do-not-use-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", _INSECURE_DEV_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0.")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_filters",
    "bootstrap",  # Bootstrap 5 static files (django-bootstrap-static): no CDN
    "fontawesome",  # icon font from the same package
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_tasks",
    "django_tasks_db",  # background jobs in the database: no other server needed
    "tokens",
    "accounts",  # after django_otp: its admin replaces django-otp's device admin
]

MIDDLEWARE = [
    # Outermost: client address, no-store and the security-log context on every answer.
    "portal.middleware.PortalSecurityMiddleware",
    # The Content-Security-Policy (django-csp); before the fast path, whose answers carry it.
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Answers /gateway/auth and /oauth/introspect/ without the rest of the stack.
    "tokens.fastpath.GatewayFastPathMiddleware",
    # A request's cache purges reach every process before it answers, waited for once.
    "tokens.gateway.cache.settle_once_middleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Two-factor authentication for staff, when TOKEN_PORTAL["REQUIRE_MFA"] is on.
    "accounts.middleware.MfaRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite by default, DATABASE_URL (PostgreSQL, psycopg 3) in production.
# Connections persist between requests: opening one per request costs several times
# the throughput of a one-query endpoint on PostgreSQL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "600")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets readers proceed while a writer commits; IMMEDIATE transactions
            # take the write lock up front, so concurrent writers queue instead of failing.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )

# Cache: local memory by default, Redis (shared by every app server) when REDIS_URL is set.
REDIS_URL = os.environ.get("REDIS_URL", "")


def _local_tier() -> dict:
    seconds = min(
        int(os.environ.get("TOKEN_PORTAL_GATEWAY_CACHE_SECONDS", "60")),
        int(os.environ.get("TOKEN_PORTAL_CLIENT_CACHE_SECONDS", "30")),
    )
    return {
        # Whether this process keeps a tier; its writes are published either way.
        "keep": os.environ.get("TOKEN_PORTAL_LOCAL_CACHE", "1") != "0" and seconds > 0,
        # The gateway's answers, the API index's version, client records (tokens.gateway.cache).
        "prefixes": ("gw:tok:", "gw:apis:", "oauth:client:"),
        "seconds": max(1, seconds),
        # A write of a gateway key (a purge) also stands, as its shadow, for longer than
        # any entry lives (portal.cache.redis._shadow: a failback to an old primary).
        "shadow": 5
        + max(
            int(os.environ.get("TOKEN_PORTAL_GATEWAY_CACHE_SECONDS", "60")),
            int(os.environ.get("TOKEN_PORTAL_CLIENT_CACHE_SECONDS", "30")),
        ),
        # PING every 10 ms; entries trusted for 50 ms after a PING that was answered; a
        # change returns 80 ms after its purge is published.
        "ping": 0.01,
        "trust": 0.05,
        "settle": 0.08,
    }


if REDIS_URL:
    CACHES = {
        "default": {
            # Django's, reusing its Redis client objects (see portal/cache/redis.py).
            "BACKEND": "portal.cache.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that stops answering must fail fast (checks then ask the database),
            # never hang every request.
            "OPTIONS": {
                "socket_connect_timeout": float(os.environ.get("REDIS_CONNECT_TIMEOUT", "1")),
                "socket_timeout": float(os.environ.get("REDIS_TIMEOUT", "1")),
                # Warm gateway checks answered in the process, without a round trip; a
                # change of a token, client or API is applied by every process before it
                # returns (portal.cache.tier.LocalTier).
                "LOCAL_TIER": _local_tier(),
                # A measurement switch: "redis-py" puts redis-py under the lean client's
                # interface (portal.cache.redispy; bench/RESULTS.md, session 5).
                "REDIS_CLIENT": os.environ.get("TOKEN_PORTAL_REDIS_CLIENT", "resp"),
            },
            "KEY_PREFIX": os.environ.get("DJANGO_CACHE_PREFIX", "tp"),
        }
    }
else:
    # Room for the gateway answers of many tokens: at the default 300 entries a gateway
    # cycling through a few thousand tokens would miss the cache on nearly every check.
    CACHES = {
        "default": {
            # Django's, plus one lean read for the gateway (see portal/cache/locmem.py).
            "BACKEND": "portal.cache.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 50_000},
        }
    }

# Argon2id for user passwords; the others only read hashes made before, upgrading them
# at the next login. (Token and client secrets are random: SHA-256 digests, see DESIGN.)
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Times everywhere (admin too) as 2026-12-04 14:52:07 UTC: portal/timefmt.py.
FORMAT_MODULE_PATH = ["portal.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tokens:list"
LOGOUT_REDIRECT_URL = "login"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Security: secure cookies and HSTS whenever not in local debug mode.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# "__Host-" cookies: browsers take them only over HTTPS, for this host, for every path.
SESSION_COOKIE_NAME = "__Host-sessionid" if SESSION_COOKIE_SECURE else "sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken" if CSRF_COOKIE_SECURE else "csrftoken"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # no script reads it: forms carry the token
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Staff sessions end after 12 hours whatever the activity (ASVS 3.3.2).
SESSION_COOKIE_AGE = int(os.environ.get("DJANGO_SESSION_COOKIE_AGE", str(12 * 3600)))
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# No inline script or style (portal.middleware adds the hash of admin's one inline style).
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/" + STATIC_URL.lstrip("/"), "/favicon.ico"],
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # Bootstrap's CSS draws its form controls with data: SVG images; the MFA
        # enrolment QR code is a data: SVG image too.
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "manifest-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}
# Error reports and the debug page never show a secret (portal.logs).
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.logs.SecretSafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "portal.logs.SecretSafeExceptionReporter"

# Two-factor authentication (django-otp, TOTP) and its recovery codes (accounts app).
OTP_TOTP_ISSUER = os.environ.get("TOKEN_PORTAL_OTP_ISSUER", "Token Portal")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Token settings.
# Background jobs (Django's tasks API through the django-tasks backport): queued in the
# database, run by `manage.py jobs_worker` (started with the server by `manage.py start`).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# E-mail (expiry notices): printed on the console unless an SMTP host is set.
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = int(os.environ.get("DJANGO_EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "Token Portal <portal@localhost>")

TOKEN_PORTAL = {
    # Bulk revocations of up to this many tokens run in the request; more run as a job.
    "BULK_REVOKE_INLINE_LIMIT": int(os.environ.get("TOKEN_PORTAL_BULK_REVOKE_INLINE_LIMIT", "300")),
    # Tokens revoked per transaction by a job (each batch commits, then purges the cache).
    "JOB_BATCH_SIZE": int(os.environ.get("TOKEN_PORTAL_JOB_BATCH_SIZE", "500")),
    # Seconds a job waits between batches (leaves the database to the gateway checks).
    "JOB_BATCH_PAUSE": float(os.environ.get("TOKEN_PORTAL_JOB_BATCH_PAUSE", "0")),
    # A running job whose worker has not reported for this many seconds is resumed.
    "JOB_STALL_SECONDS": int(os.environ.get("TOKEN_PORTAL_JOB_STALL_SECONDS", "60")),
    # Lifetime of tokens issued by the OAuth token endpoint, in seconds.
    "OAUTH_TOKEN_LIFETIME": int(os.environ.get("TOKEN_PORTAL_OAUTH_TOKEN_LIFETIME", "3600")),
    # How long a gateway check may be answered from the cache, in seconds.
    "GATEWAY_CACHE_SECONDS": int(os.environ.get("TOKEN_PORTAL_GATEWAY_CACHE_SECONDS", "60")),
    # "Last used" is written at most once per this many seconds per token.
    "LAST_USED_RESOLUTION": int(os.environ.get("TOKEN_PORTAL_LAST_USED_RESOLUTION", "60")),
    # How long introspection may trust a cached client (app) record, in seconds.
    "CLIENT_CACHE_SECONDS": int(os.environ.get("TOKEN_PORTAL_CLIENT_CACHE_SECONDS", "30")),
    # Two-factor authentication for staff (see accounts.mfa): on in production, off in
    # local debug mode so that the demo logins work at once.
    "REQUIRE_MFA": env_bool("TOKEN_PORTAL_REQUIRE_MFA", not DEBUG),
    # How many reverse proxies in front of the app append to X-Forwarded-For: the client
    # address (rate limits, audit, logs) is read from there. 0: REMOTE_ADDR as is.
    "TRUSTED_PROXY_COUNT": int(os.environ.get("TOKEN_PORTAL_TRUSTED_PROXY_COUNT", "0")),
    # The header that holds the URI a gateway check is about, which the gateway always
    # sets: "X-Original-URI" (nginx) or "X-Forwarded-Uri" (Traefik). Empty: either, and
    # 403 when a request has both and they differ (docs/gateway.md).
    "TRUSTED_URI_HEADER": os.environ.get("TOKEN_PORTAL_TRUSTED_URI_HEADER", "").strip(),
    # GitHub's secret scanning public keys, a file in the shape GitHub publishes them
    # (docs/secret-scanning.md); empty: no /secret-scanning/github/ endpoint (404).
    "SECRET_SCANNING_KEYS": os.environ.get("TOKEN_PORTAL_SECRET_SCANNING_KEYS", "").strip(),
    # Counted in the cache (shared through Redis): "N/s", "N/m", "N/h"; empty: no limit.
    "RATE_LIMITS": {
        # Login attempts per client address; failed logins per account; failed
        # two-factor codes per account (the device also backs off exponentially).
        "login": os.environ.get("TOKEN_PORTAL_RATE_LIMIT_LOGIN", "20/m"),
        "login_user": os.environ.get("TOKEN_PORTAL_RATE_LIMIT_LOGIN_FAILURES", "10/h"),
        "mfa": os.environ.get("TOKEN_PORTAL_RATE_LIMIT_MFA_FAILURES", "5/m"),
        # OAuth requests per client address (token, revoke); introspections per client.
        "token": os.environ.get("TOKEN_PORTAL_RATE_LIMIT_TOKEN", "60/m"),
        "revoke": os.environ.get("TOKEN_PORTAL_RATE_LIMIT_REVOKE", "120/m"),
        "introspect": os.environ.get("TOKEN_PORTAL_RATE_LIMIT_INTROSPECT", "100000/s"),
        # Failed client authentications at the OAuth endpoints, per address and per
        # client_id (tokens.ratelimit.FAILURES; docs/gateway.md, "Rate limits").
        "client_auth": os.environ.get("TOKEN_PORTAL_RATE_LIMIT_CLIENT_AUTH_FAILURES", "30/m"),
    },
}
if TOKEN_PORTAL["TRUSTED_URI_HEADER"].lower() not in ("", "x-original-uri", "x-forwarded-uri"):
    raise ImproperlyConfigured(
        "TOKEN_PORTAL_TRUSTED_URI_HEADER must be X-Original-URI, X-Forwarded-Uri or empty."
    )

# One JSON object per line on stderr; every handler masks token- and secret-shaped text
# (portal.logs). Django's own loggers use the same handler: no unmasked error mails.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_secrets": {"()": "portal.logs.SecretMaskingFilter"}},
    "formatters": {"json": {"()": "portal.logs.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["mask_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
    },
}
