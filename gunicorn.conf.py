"""gunicorn's settings for the portal. gunicorn reads ``./gunicorn.conf.py`` when it starts
in the project's root (elsewhere: ``gunicorn -c /path/to/gunicorn.conf.py portal.wsgi``)."""

# gunicorn's sync worker, without the lingering close after every answer when nothing is
# left unread (portal/workers.py explains why; bench/RESULTS.md measures it).
worker_class = "portal.workers.SyncWorker"
