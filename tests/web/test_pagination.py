"""EstimatedCountPaginator: exact counts while cheap, never a full COUNT(*) when big."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import AppFactory, make_token
from tokens.models import AccessToken
from tokens.pagination import EstimatedCountPaginator

pytestmark = pytest.mark.django_db


def unbounded_counts(queries) -> list[str]:
    """COUNT queries that are not limited to a bounded subquery: what must not happen."""
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    return [sql for sql in counts if not re.search(r"\bLIMIT\b", sql, re.IGNORECASE)]


@pytest.fixture
def tokens_25():
    app = AppFactory()
    return [make_token(app=app, owner=f"owner {n}")[0] for n in range(25)]


def test_a_small_list_is_counted_exactly_with_one_bounded_query(tokens_25):
    paginator = EstimatedCountPaginator(AccessToken.objects.all(), 10, exact_count_limit=100)
    with CaptureQueriesContext(connection) as ctx:
        assert paginator.count == 25
    assert paginator.count_is_exact is True
    assert paginator.count_is_lower_bound is False
    assert paginator.num_pages == 3
    assert len(ctx.captured_queries) == 1
    assert unbounded_counts(ctx.captured_queries) == []


def test_a_list_of_exactly_the_limit_is_still_exact(tokens_25):
    paginator = EstimatedCountPaginator(AccessToken.objects.all(), 10, exact_count_limit=25)
    assert paginator.count == 25
    assert paginator.count_is_exact is True


def test_a_big_list_is_never_counted_with_a_full_count(tokens_25):
    paginator = EstimatedCountPaginator(AccessToken.objects.all(), 10, exact_count_limit=10)
    with CaptureQueriesContext(connection) as ctx:
        count = paginator.count
    assert paginator.count_is_exact is False
    assert count >= 11
    assert unbounded_counts(ctx.captured_queries) == []
    if connection.vendor != "postgresql":
        # No cheap estimate on SQLite: the count is the lower bound it stopped at.
        assert count == 11
        assert paginator.count_is_lower_bound is True


def test_pages_of_a_big_list_still_hold_the_right_rows(tokens_25):
    queryset = AccessToken.objects.order_by("-created_at", "-id")
    paginator = EstimatedCountPaginator(queryset, 10, exact_count_limit=10)
    assert list(paginator.page(2).object_list) == list(queryset[10:20])


def test_filters_are_counted_not_the_whole_table(tokens_25):
    queryset = AccessToken.objects.filter(owner__in=["owner 1", "owner 2"])
    paginator = EstimatedCountPaginator(queryset, 10, exact_count_limit=10)
    assert paginator.count == 2
    assert paginator.count_is_exact is True


def test_a_plain_list_and_a_sliced_queryset_are_counted_as_usual(tokens_25):
    assert EstimatedCountPaginator(list(range(7)), 5).count == 7
    sliced = AccessToken.objects.order_by("pk")[:5]
    assert EstimatedCountPaginator(sliced, 2, exact_count_limit=1).count == 5


@pytest.mark.postgres
def test_on_postgresql_a_big_list_is_counted_by_the_planner_estimate(tokens_25):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tokens_accesstoken")
    paginator = EstimatedCountPaginator(AccessToken.objects.all(), 10, exact_count_limit=10)
    with CaptureQueriesContext(connection) as ctx:
        count = paginator.count
    assert paginator.count_is_exact is False
    assert paginator.count_is_lower_bound is False
    assert 20 <= count <= 30  # the planner's estimate, close to the 25 rows
    assert any(q["sql"].startswith("EXPLAIN") for q in ctx.captured_queries)
    assert unbounded_counts(ctx.captured_queries) == []
