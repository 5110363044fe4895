"""Pagination for tables too big to count on every page view.

``Paginator.count`` runs ``SELECT COUNT(*)`` over the whole filtered queryset; on a table
of a million access tokens that is a scan of the whole table on each page view, slower
than fetching the page itself. :class:`EstimatedCountPaginator` counts exactly only
while that is cheap:

1. It counts at most ``exact_count_limit + 1`` rows
   (``SELECT COUNT(*) FROM (SELECT id … LIMIT n + 1)``): the database stops as soon as
   it has seen that many. If there are no more than ``exact_count_limit`` rows, that is
   the exact count, and nothing else is asked.
2. Otherwise the list is big, and the count is an estimate: on PostgreSQL the planner's
   estimate of the rows of the same query (``EXPLAIN``: for an unfiltered table that is
   ``pg_class.reltuples`` scaled to the table's current size, for a filtered one the
   planner's selectivity estimate), never less than the rows already counted. Databases
   without a cheap estimate (SQLite) get the lower bound ``exact_count_limit + 1``.

``count_is_exact`` and ``count_is_lower_bound`` say which of the three the count is, so
that a template can write "about 1,000,000" or "more than 10,000" instead of a number
that looks exact. Page numbers follow the count: when it is an estimate, the last pages
may be empty (estimate too high) or the last rows reachable only by reversing the sort
(estimate too low); a list that big is searched and filtered rather than paged to its end.

Works with any ``QuerySet`` (plain sequences are counted with ``len``): use it in a
``ModelAdmin`` (``paginator = EstimatedCountPaginator``) or a ``ListView``
(``paginator_class = EstimatedCountPaginator``).
"""

import json

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# A quick search over owner and extra-field text reads each match to count it: for a
# common word, ten thousand of them cost more than the rest of the page. Its count is
# exact up to this many; beyond, a search is refined rather than paged through.
SEARCH_EXACT_COUNT_LIMIT = 1_000


class EstimatedCountPaginator(Paginator):
    #: Up to this many rows the count is exact; above it, an estimate.
    exact_count_limit = 10_000

    def __init__(self, object_list, per_page, *args, exact_count_limit=None, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        if exact_count_limit is not None:
            self.exact_count_limit = exact_count_limit
        self.count_is_exact = True
        self.count_is_lower_bound = False

    @cached_property
    def count(self) -> int:
        if not isinstance(self.object_list, QuerySet):
            return len(self.object_list)
        if self.object_list.query.is_sliced:  # already bounded by its slice
            return self.object_list.count()
        queryset = self.object_list.order_by()  # ordering does not change a count
        bounded = queryset[: self.exact_count_limit + 1].count()
        if bounded <= self.exact_count_limit:
            return bounded
        self.count_is_exact = False
        estimate = self._estimate(queryset)
        if estimate is None:
            self.count_is_lower_bound = True
            return bounded
        return max(bounded, estimate)

    def page(self, number):
        number = self.validate_number(number)  # counts: count_is_exact is known after it
        if self.count_is_exact:
            return super().page(number)
        # An estimated count must not cut the page short (Paginator trims the last page
        # to ``count``): take whatever rows the page really has.
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)

    @staticmethod
    def _estimate(queryset: QuerySet) -> int | None:
        """The planner's row estimate for ``queryset``, or None where there is none."""
        if connections[queryset.db].vendor != "postgresql":
            return None
        plan = json.loads(queryset.explain(format="json"))
        return int(plan[0]["Plan"]["Plan Rows"])
