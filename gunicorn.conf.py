"""gunicorn's settings for the portal. gunicorn reads ``./gunicorn.conf.py`` when it starts
in the project's root (elsewhere: ``gunicorn -c /path/to/gunicorn.conf.py portal.wsgi``)."""

# gunicorn's sync worker, without the lingering close after every answer when nothing is
# left unread (portal/serving/worker.py explains why; bench/RESULTS.md measures it).
worker_class = "portal.serving.worker.SyncWorker"


def on_starting(server):
    """Several workers without a shared cache would disagree about a revoke: refused
    (``portal.deployment``)."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup(set_prefix=False)
    from portal.deployment import refuse_several_processes_without_redis

    refuse_several_processes_without_redis(server.cfg.workers)


def nworkers_changed(server, new_value, old_value):
    """More workers asked for while running (``kill -TTIN``): refused on the same terms
    as at start-up; the arbiter keeps the number it had."""
    from django.conf import settings

    from portal.deployment import shared_cache_problem

    if old_value is None or not settings.configured:  # the start, checked by on_starting
        return
    problem = shared_cache_problem(new_value)
    if problem is not None and not settings.DEBUG:
        server._num_workers = old_value  # (the property's setter would call this again)
        server.log.error("Token Portal keeps %s worker(s): %s", old_value, problem)


def post_worker_init(worker):
    """Each worker of the portal writes "last used" from a thread of its own, off the
    request path (``tokens.gateway.check.start_last_used_writer``); the first one says what in
    Redis would let a revoke be undone, if anything (``portal.deployment``)."""
    from django.apps import apps

    if apps.ready and apps.is_installed("tokens"):  # the portal (not another application)
        from portal.deployment import log_redis_problems
        from tokens.gateway.last_used import start_last_used_writer

        start_last_used_writer()
        if worker.age == 1:
            log_redis_problems()
