"""gunicorn's settings for the portal. gunicorn reads ``./gunicorn.conf.py`` when it starts
in the project's root (elsewhere: ``gunicorn -c /path/to/gunicorn.conf.py portal.wsgi``)."""

# gunicorn's sync worker, without the lingering close after every answer when nothing is
# left unread (portal/workers.py explains why; bench/RESULTS.md measures it).
worker_class = "portal.workers.SyncWorker"


def post_worker_init(worker):
    """Each worker of the portal writes "last used" from a thread of its own, off the
    request path (``tokens.gateway.start_last_used_writer``)."""
    from django.apps import apps

    if apps.ready and apps.is_installed("tokens"):  # the portal (not another application)
        from tokens.gateway import start_last_used_writer

        start_last_used_writer()
