"""Structured security logging that never carries a secret.

- ``security_log(event, ...)``: one JSON log line per security event (OWASP logging
  vocabulary: ``authn_token_created``, ``authn_token_revoked``, ``authn_token_reuse``,
  ``authz_fail``, ``authn_login_fail``, …) with actor, token id and remote address.
- ``JsonFormatter``: every log line as one JSON object (python-json-logger's, with the
  portal's fields).
- ``SecretMaskingFilter``: on the handlers, masks anything that looks like a token
  (``tpk_…``), a client secret (``tpcs_…``) or an ``Authorization`` credential in any
  record, its arguments and its traceback, whoever logged it.
- ``SecretSafeExceptionReporterFilter``: the same for error reports (and the debug page).

The stdlib ``logging`` is imported absolutely; this module only shares its name.
"""

import contextvars
import copy
import logging
import os
import re
from datetime import UTC, datetime
from functools import partial

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter
from pythonjsonlogger import json as json_logger

from portal import aftercommit

SECURITY_LOGGER = "portal.middleware"
MASK = "[masked]"

# A token is tpk_ + 49 base62 characters, a client secret tpcs_ + 43; twelve or more
# after the prefix is already too much to show (the display prefix keeps eight). No word
# boundary before the prefix: "api_key_tpk_…" and "t%3Dtpk_…" hold a secret all the same.
# A lookahead, so that overlapping candidates are all found ("tpk_" + twelve characters
# run straight into a real token: "tpk_abcdefghijkltpk_…").
_SECRET_PREFIXES = ("tpk_", "tpcs_")
_SECRET_RE = re.compile(r"(?=((tpk_|tpcs_)[0-9A-Za-z]{12,}))")
_CREDENTIAL_RE = re.compile(
    r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9._~+/=%-]{8,}"
    r"|\b(client_secret|password|otp_token|recovery_code)(=|\"?\s*:\s*\"?)[^&\s\"',]+"
)

logger = logging.getLogger(SECURITY_LOGGER)

# What the request middleware knows about the current request (see portal.middleware).
request_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "token_portal_request_context", default=None
)


def mask_secrets(text: str) -> str:
    """``text`` with every token, client secret and credential replaced by ``[masked]``."""
    if not text or not isinstance(text, str):
        return text
    if any(prefix in text for prefix in _SECRET_PREFIXES):
        text = _mask_tokens(text)
    return _CREDENTIAL_RE.sub(_mask_credential, text)


def _mask_tokens(text: str) -> str:
    """Each run of overlapping token- or secret-shaped spans replaced by one mask, named
    by the prefix of the run's first."""
    parts, kept_to, start, end, prefix = [], 0, None, 0, ""
    for match in _SECRET_RE.finditer(text):
        if start is not None and match.start() <= end:  # overlaps or touches the run
            end = max(end, match.end(1))
            continue
        if start is not None:
            parts.append(f"{text[kept_to:start]}{prefix}{MASK}")
            kept_to = end
        start, end, prefix = match.start(), match.end(1), match.group(2)
    if start is None:
        return text
    parts.append(f"{text[kept_to:start]}{prefix}{MASK}{text[end:]}")
    return "".join(parts)


def _mask_credential(match: re.Match) -> str:
    if match.group(1):
        return f"{match.group(1)}{match.group(2)}{MASK}"
    return f"{match.group(3)}{match.group(4)}{MASK}"


def contains_secret(text: str) -> bool:
    return bool(text) and isinstance(text, str) and _SECRET_RE.search(text) is not None


def _mask_value(value):
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {key: _mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(item) for item in value]
    return value


class SecretMaskingFilter(logging.Filter):
    """Masks secrets in every record a handler emits (message, arguments, traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we can
            message = str(record.msg)
        record.msg, record.args = mask_secrets(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        security = getattr(record, "security", None)
        if isinstance(security, dict):
            record.security = _mask_value(security)
        return True


class JsonFormatter(json_logger.JsonFormatter):
    """One JSON object per line: time, level, logger, message, and the event's fields.

    python-json-logger's formatter, told which fields to write: the record's
    ``security`` fields, its ``status_code`` (as ``status``), traceback and stack. Any
    other attribute a record carries (the request Django attaches to its own records,
    with its query string) is left out: the masking filter does not look there.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", ["asctime", "levelname", "name", "message"])
        kwargs.setdefault("rename_fields", _RENAMED)
        kwargs.setdefault("json_default", str)
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        written = copy.copy(record)
        # The traceback as text, as the masking filter left it: python-json-logger would
        # format it afresh from exc_info, unmasked. A message is text, even a dict.
        written.exc_info = None
        if isinstance(written.msg, dict):
            written.msg, written.args = written.getMessage(), None
        return super().format(written)

    def process_log_record(self, log_data: dict) -> dict:
        line = {field: log_data[field] for field in ("time", "level", "logger", "message")}
        security = log_data.get("security")
        if isinstance(security, dict):
            line.update(security)
        status = log_data.get("status_code")
        if isinstance(status, int):
            line.setdefault("status", status)
        for field in ("exception", "stack"):
            if field in log_data:
                line[field] = log_data[field]
        return line


_RENAMED = {
    "asctime": "time",
    "levelname": "level",
    "name": "logger",
    "exc_info": "exception",
    "stack_info": "stack",
}


def _actor_label(actor) -> str | None:
    if actor is None:
        return None
    if isinstance(actor, str):
        return actor
    if getattr(actor, "client_id", None) and not hasattr(actor, "get_username"):  # an app
        return f"client {actor.client_id}"
    if getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return "anonymous"


def security_log(
    event: str,
    *,
    actor=None,
    token=None,
    remote_addr: str | None = None,
    level: int = logging.INFO,
    on_commit: bool = False,
    **fields,
) -> None:
    """Log one security event as structured fields; never pass a secret in ``fields``.

    ``token`` is an AccessToken (its public id is logged) or a public id. Without
    ``actor``/``remote_addr``, those of the current request are used. With
    ``on_commit``, the line is written only once the current transaction commits, so
    a rolled-back change leaves no event behind.
    """
    context = request_context.get() or {}
    record = {"event": event}
    label = _actor_label(actor)
    if label is None and context.get("actor"):
        label = context["actor"]()
    if label is not None:
        record["actor"] = label
    if token is not None:
        record["token_id"] = str(getattr(token, "public_id", token))
    record["remote_addr"] = remote_addr or context.get("remote_addr")
    if "request_id" in context:
        if context["request_id"] is None:  # the request's first event: its id, from now on
            context["request_id"] = os.urandom(16).hex()
        record["request_id"] = context["request_id"]
    record.update({key: value for key, value in fields.items() if value is not None})
    emit = partial(logger.log, level, event, extra={"security": record})
    if on_commit:
        aftercommit.run(emit, quiet=True)
    else:
        emit()


class SecretSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Error reports (and the debug page) never show a secret, whatever the view forgot.

    Always active, also in debug mode. Hides the parameters that carry credentials on
    every view, and masks token- or secret-shaped text in every other value.
    """

    always_sensitive = frozenset(
        {"password", "client_secret", "token", "otp_token", "code", "recovery_code"}
    )

    def is_active(self, request):
        return True

    def get_post_parameters(self, request):
        if request is None:
            return {}
        cleansed = super().get_post_parameters(request).copy()
        for name in list(cleansed):
            if name in self.always_sensitive or self.hidden_settings.search(name):
                cleansed.setlist(name, [self.cleansed_substitute])
            else:
                cleansed.setlist(name, [mask_secrets(v) for v in cleansed.getlist(name)])
        return cleansed

    def get_safe_request_meta(self, request):
        return {
            key: mask_secrets(value) if isinstance(value, str) else value
            for key, value in super().get_safe_request_meta(request).items()
        }

    def get_traceback_frame_variables(self, request, tb_frame):
        cleansed = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if isinstance(name, str) and self.hidden_settings.search(name):
                value = self.cleansed_substitute
            elif isinstance(value, str):
                value = mask_secrets(value)
            else:
                try:
                    text = repr(value)
                except Exception:
                    text = ""
                if contains_secret(text) or _CREDENTIAL_RE.search(text):
                    value = mask_secrets(text)
            cleansed.append((name, value))
        return cleansed


class SecretSafeExceptionReporter(ExceptionReporter):
    """Error reports masked as a whole: exception messages and reprs can hold secrets too."""

    def get_traceback_html(self):
        return mask_secrets(str(super().get_traceback_html()))

    def get_traceback_text(self):
        return mask_secrets(str(super().get_traceback_text()))
