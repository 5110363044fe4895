"""The check's PostgreSQL path (a statement prepared per connection, run through libpq)
through what a server's life brings: schema changes, dropped connections.

Run by the second pass of ``.ci/run`` (DATABASE_URL → PostgreSQL); skipped with the
reason on SQLite.
"""

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection

from portal.wsgi import application
from tests.factories import PlanFactory, make_token
from tests.gateway.test_fastpath import call, check_request
from tokens import fastpath

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("needs_postgresql"),
]


@pytest.fixture
def secret():
    plan = PlanFactory(name="Gold", api__name="Payments", api__base_path="/pay")
    return make_token(plans=[plan], owner="Ada Lovelace")[1]


def cold_check(secret: str) -> str:
    cache.clear()  # a cache miss: the prepared statement runs
    return call(application, **check_request(secret)).status


def test_a_schema_change_under_a_prepared_check_is_survived(secret):
    assert cold_check(secret) == "200 OK"  # prepared on this connection
    with connection.cursor() as cursor:
        # A migration changes a selected column's type: the prepared plan's result
        # type no longer holds ("cached plan must not change result type").
        cursor.execute("ALTER TABLE tokens_accesstoken ALTER COLUMN owner TYPE varchar(250)")
    try:
        assert cold_check(secret) == "200 OK"
        assert cold_check(secret) == "200 OK"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE tokens_accesstoken ALTER COLUMN owner TYPE varchar(200)")


def test_a_statement_a_pooler_dropped_is_prepared_again(secret):
    assert cold_check(secret) == "200 OK"
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as pgbouncer's DISCARD ALL would

    assert cold_check(secret) == "200 OK"


def test_an_idle_connection_the_server_dropped_costs_no_answer(secret, monkeypatch):
    assert cold_check(secret) == "200 OK"
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])  # a restart, a failover
    monkeypatch.setattr(fastpath, "IDLE_SECONDS", 0.0)  # idle long enough to be doubted

    assert cold_check(secret) == "200 OK"  # checked, reconnected, answered: not a 503
    assert connection.connection.info.backend_pid != pid
