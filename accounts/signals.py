"""Login audit and session tracking, on Django's own authentication signals."""

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from accounts.sessions import forget_session, track_session
from portal.logs import security_log
from portal.middleware import remote_addr


@receiver(user_logged_in, dispatch_uid="accounts.logged_in")
def _logged_in(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    track_session(
        user=user,
        session_key=getattr(session, "session_key", None),
        remote_addr=remote_addr(request),
    )
    security_log("authn_login_success", actor=user, remote_addr=remote_addr(request))


@receiver(user_logged_out, dispatch_uid="accounts.logged_out")
def _logged_out(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    forget_session(getattr(session, "session_key", None))
    if user is not None:
        security_log("session_logout", actor=user, remote_addr=remote_addr(request))
