"""Random data, filters, orderings, limits and keyset pages agree on memory, SQLite and
PostgreSQL: the kit's property (clonestore.testing.properties.queries), on three stores."""

from clonestore.testing.properties.queries import test_queries_agree as test_queries_agree
