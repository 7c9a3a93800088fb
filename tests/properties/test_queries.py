"""Random data, filters, orderings, limits and keyset pages agree on memory, SQLite and
PostgreSQL: the kit's property (clonestore.testing.properties.test_queries), on three stores."""

from clonestore.testing.properties.test_queries import (
    test_json_lookups_agree as test_json_lookups_agree,
)
from clonestore.testing.properties.test_queries import test_queries_agree as test_queries_agree
from clonestore.testing.properties.test_queries import (
    test_text_search_agrees as test_text_search_agrees,
)
