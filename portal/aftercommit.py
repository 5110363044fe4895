"""What a transaction does once it commits: log lines, then cache purges, all of them.

Django runs a transaction's on-commit callbacks one after another and stops at the
first that raises, silently dropping the rest. A revoke of a thousand tokens registers
a thousand purges and a thousand log lines: one Redis error must not cost the others
their purge or their line. So everything the portal does after a commit goes into one
batch per transaction (one on-commit callback): each step is attempted, in the order
registered, whatever the others do; errors of steps that must be reported are raised
together once the batch is done (the first of them, which for purges names them all:
``tokens.gateway.cache``).
"""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


class Batch:
    def __init__(self):
        self.steps: list = []  # callables, in order
        self.groups: dict = {}  # key → a step that collects (one per key and batch)

    def __call__(self) -> None:
        errors = []
        for step in self.steps:
            try:
                step()
            except Exception as error:  # the other steps still run
                errors.append(error)
        if errors:
            raise errors[0]


def _current() -> Batch | None:
    """This transaction's batch; None outside a transaction (steps then run at once)."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return None
    kept = getattr(connection, "_token_portal_after_commit", None)
    if kept is not None:
        batch, registered_in = kept
        # Django replaces its list of callbacks at every commit and rollback (also of a
        # savepoint): the same list means this transaction's batch is registered still.
        if registered_in is connection.run_on_commit or any(
            entry[1] is batch for entry in connection.run_on_commit
        ):
            return batch
    batch = Batch()
    transaction.on_commit(batch, robust=False)
    connection._token_portal_after_commit = (batch, connection.run_on_commit)
    return batch


def run(step, *, quiet: bool = False) -> None:
    """``step()`` once the transaction commits (at once outside one). A ``quiet`` step's
    error is logged, never raised; any other's is raised after every step has run."""
    if quiet:
        step = _Quiet(step)
    batch = _current()
    if batch is None:
        step()
    else:
        batch.steps.append(step)


def group(key, factory):
    """The step collecting ``key``'s work in this transaction (made by ``factory`` and
    run as one step), or a new one that runs at once when there is no transaction."""
    batch = _current()
    if batch is None:
        return _Immediate(factory())
    step = batch.groups.get(key)
    if step is None:
        step = batch.groups[key] = factory()
        batch.steps.append(step)
    return step


class _Quiet:
    def __init__(self, step):
        self.step = step

    def __call__(self) -> None:
        try:
            self.step()
        except Exception:
            logger.exception("An after-commit step failed")


class _Immediate:
    """A group outside a transaction: each addition runs at once."""

    def __init__(self, step):
        self.step = step

    def add(self, *args) -> None:
        self.step.add(*args)
        self.step()
        self.step.clear()
