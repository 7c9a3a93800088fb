"""Differential property: random data, filters, orderings, limits and keyset pages
agree with the oracle. See :mod:`clonestore.testing.properties`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clonestore.testing import strategies as s
from clonestore.testing.differential import Stores
from clonestore.testing.profiles import load_default_profile

__all__ = ["check_queries_agree", "documents", "filters", "orders", "test_queries_agree"]

load_default_profile()

#: Lookups on documents, each with the strategy of its value.
LOOKUPS: dict[str, st.SearchStrategy[Any]] = {
    "filename": s.short_name,
    "filename__ne": s.short_name,
    "filename__lt": s.short_name,
    "filename__gte": s.short_name,
    "filename__contains": s.text,
    "filename__startswith": s.text,
    "filename__endswith": s.text,
    "filename__in": st.lists(s.short_name, max_size=3),
    "filename__not_in": st.lists(s.short_name, max_size=3),
    "storage_path": st.one_of(st.none(), s.short_name),
    "storage_path__isnull": st.booleans(),
    "storage_path__ne": s.short_name,
    "storage_path__lte": s.short_name,
    "size_bytes__gt": s.int64.filter(lambda i: i >= 0) | st.integers(-5, 5),
    "size_bytes__lte": st.integers(0, 2**63 - 1),
    "tags__contains": s.tag_lists,
    "tags__overlap": s.tag_lists,
    "uploaded_at__gte": s.aware_datetimes,
    "text_content__contains": st.sampled_from(["%", "_", "\\", "a", "ß", "A"]),
}
INSTANTS = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)]
ORDER_KEYS = [
    "filename",
    "storage_path",
    "size_bytes",
    "uploaded_at",
    "text_content",
    "id",
    "created_at",
]

documents = st.lists(
    st.fixed_dictionaries(
        {
            "filename": s.short_name,
            "storage_path": st.one_of(st.none(), s.short_name),
            "size_bytes": st.one_of(st.integers(0, 3), st.just(2**63 - 1)),
            "tags": s.tag_lists,
            # Few distinct instants, so orderings meet ties and keyset pages must break them.
            "uploaded_at": st.sampled_from(INSTANTS) | s.aware_datetimes,
            "text_content": st.one_of(st.none(), s.text),
        }
    ),
    max_size=12,
)
filters = st.dictionaries(st.sampled_from(sorted(LOOKUPS)), st.none(), max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: LOOKUPS[k] for k in keys})
)
orders = st.lists(
    st.sampled_from(ORDER_KEYS).flatmap(lambda k: st.sampled_from([k, "-" + k])),
    max_size=3,
    unique_by=lambda k: k.lstrip("-"),
)


def test_queries_agree(differential_stores: Stores) -> None:
    """find_many, count, exists and a full keyset page walk return the same rows everywhere."""

    # Built per run so that the profile loaded by then decides (settings snapshot it).
    @settings(settings.default, deadline=None)
    @given(
        rows=documents,
        where=filters,
        order=orders,
        limit=st.one_of(st.none(), st.integers(0, 5)),
        offset=st.integers(0, 3),
        size=st.integers(1, 5),
    )
    def queries_agree(
        rows: list[dict[str, Any]],
        where: dict[str, Any],
        order: list[str],
        limit: int | None,
        offset: int,
        size: int,
    ) -> None:
        check_queries_agree(differential_stores, rows, where, order, limit, offset, size)

    queries_agree()


def check_queries_agree(
    stores: Stores,
    rows: list[dict[str, Any]],
    where: dict[str, Any],
    order: list[str],
    limit: int | None,
    offset: int,
    size: int,
) -> None:
    """One example of :func:`test_queries_agree`."""
    stores.reset()
    user = stores.apply(lambda st_: st_.users.create(email="q@example.com", name="Q"))
    stores.apply(lambda st_: st_.documents.create_many({**r, "user_id": user.id} for r in rows))
    stores.apply(
        lambda st_: st_.documents.find_many(
            where=where, order_by=order or None, limit=limit, offset=offset
        )
    )
    stores.apply(lambda st_: st_.documents.count(where))
    stores.apply(lambda st_: st_.documents.exists(**where))

    def walk(st_: Any) -> Any:
        pages, cursor = [], None
        for _ in range(len(rows) + 2):
            page = st_.documents.page(where=where, order_by=order or None, size=size, cursor=cursor)
            pages.append([d.id for d in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break
        return pages

    pages = stores.apply(walk)
    everything = stores.apply(
        lambda st_: [d.id for d in st_.documents.find_many(where=where, order_by=order or None)]
    )
    if pages is not None:
        assert [i for p in pages for i in p] == everything, "pages must tile the full result"
