"""Ending a user's sessions, wherever the session engine keeps them."""

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import UserSession


def _store(session_key: str):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)


def track_session(*, user, session_key: str | None, remote_addr: str | None) -> None:
    if not session_key:
        return
    stale = timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE)
    UserSession.objects.filter(user=user, created_at__lt=stale).delete()
    UserSession.objects.update_or_create(
        session_key=session_key, defaults={"user": user, "remote_addr": remote_addr or None}
    )


def rename_session(*, old_key: str | None, new_key: str | None) -> None:
    """The session key was cycled (after two-factor verification): keep tracking it."""
    if old_key and new_key and old_key != new_key:
        UserSession.objects.filter(session_key=old_key).update(session_key=new_key)


def forget_session(session_key: str | None) -> None:
    if session_key:
        UserSession.objects.filter(session_key=session_key).delete()


def end_user_sessions(user) -> int:
    """Log ``user`` out everywhere; returns how many sessions were ended."""
    with transaction.atomic():
        keys = list(
            UserSession.objects.select_for_update()
            .filter(user=user)
            .values_list("session_key", flat=True)
        )
        UserSession.objects.filter(session_key__in=keys).delete()
    ended = 0
    for key in keys:
        store = _store(key)
        if store.exists(key):
            ended += 1
        store.delete(key)
    return ended
