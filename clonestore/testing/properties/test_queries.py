"""Differential property: random data, filters, orderings, limits and keyset pages
agree with the oracle. See :mod:`clonestore.testing.properties`."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clonestore.testing import strategies as s
from clonestore.testing.differential import Stores
from clonestore.testing.profiles import load_default_profile

__all__ = [
    "check_json_lookups_agree",
    "check_queries_agree",
    "documents",
    "filters",
    "orders",
    "test_json_lookups_agree",
    "test_queries_agree",
    "test_text_search_agrees",
]

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


def test_json_lookups_agree(differential_stores: Stores) -> None:
    """find_many, count and similar with random JSON lookups return the same memories everywhere."""

    @settings(settings.default, deadline=None)
    @given(metadata=st.lists(s.json_metadata, max_size=10), data=st.data())
    def json_lookups_agree(metadata: list[dict[str, Any]], data: st.DataObject) -> None:
        # Values near the stored ones, so that lookups match and meet look-alikes of
        # other JSON types (1, 1.0, "1", true).
        stored = sorted({repr(v): v for m in metadata for v in s.json_scalars_in(m)}.items())
        near = s.json_lookups_near([v for _, v in stored])
        lookups = data.draw(st.lists(near, min_size=1, max_size=2), label="lookups")
        check_json_lookups_agree(differential_stores, metadata, dict(lookups))

    json_lookups_agree()


def check_json_lookups_agree(
    stores: Stores, metadata: list[dict[str, Any]], where: dict[str, Any]
) -> None:
    """One example of :func:`test_json_lookups_agree`."""
    stores.reset()
    user = stores.apply(lambda st_: st_.users.create(email="j@example.com", name="J"))
    stores.apply(
        lambda st_: st_.memories.create_many(
            {"user_id": user.id, "content": f"m{i}", "embedding": [1.0, float(i)], "metadata": m}
            for i, m in enumerate(metadata)
        )
    )
    stores.apply(lambda st_: [m.content for m in st_.memories.find_many(where=where)])
    stores.apply(lambda st_: st_.memories.count(where))
    stores.apply(
        lambda st_: [
            (found.memory.content, found.score)
            for found in st_.memories.similar(user.id, [1.0, 0.5], limit=4, where=where)
        ]
    )


#: Words text search meets: case variants, accents, a ligature-like fold (ß), digits.
WORDS = ["red", "Red", "RED", "car", "café", "cafe", "straße", "STRASSE", "x1", "日本", "the"]
_texts = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from([" ", ", ", "-", "_", "! ", "\n"])),
    max_size=8,
).map(lambda parts: "".join(w + sep for w, sep in parts))
_queries = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).flatmap(
    lambda words: st.sampled_from(
        [" ".join(words), '"' + " ".join(words) + '"', words[0] + ' "' + " ".join(words)]
    )
)


def test_text_search_agrees(differential_stores: Stores) -> None:
    """search and recall return the same records, scores and order everywhere."""

    @settings(settings.default, deadline=None)
    @given(
        texts=st.lists(st.tuples(_texts, st.booleans(), st.booleans()), max_size=10),
        query=_queries,
        limit=st.integers(1, 6),
    )
    def text_search_agrees(texts: list[tuple[str, bool, bool]], query: str, limit: int) -> None:
        check_text_search_agrees(differential_stores, texts, query, limit)

    text_search_agrees()


def _load_texts(
    ada: str, bob: str, texts: list[tuple[str, bool, bool]], store: Any
) -> list[Any]:
    """Each text as a memory (unless blank; soft deleted when asked) and a document (the
    text in its tags when deleted, else its content), of ada or bob, in one transaction:
    one commit an example, not one per write (what is searched is the same)."""
    written: list[Any] = []
    with store.transaction():
        for i, (text, other, deleted) in enumerate(texts):
            owner = bob if other else ada
            if text.strip():
                memory = store.memories.add(owner, text, [1.0, float(i)])
                written.append(memory)
                if deleted:
                    written.append(store.memories.delete(memory.id))
            written.append(
                store.documents.create(
                    user_id=owner,
                    filename="f.txt",
                    text_content=None if deleted else text,
                    tags=[text] if deleted else [],
                )
            )
    return written


def check_text_search_agrees(
    stores: Stores, texts: list[tuple[str, bool, bool]], query: str, limit: int
) -> None:
    """One example of :func:`test_text_search_agrees`: memories of two users (some soft
    deleted), documents with the text in their content or tags; search in and across
    views, and recall."""
    stores.reset()
    ada = stores.apply(lambda st_: st_.users.create(email="a@example.com", name="A"))
    bob = stores.apply(lambda st_: st_.users.create(email="b@example.com", name="B"))
    stores.apply(partial(_load_texts, ada.id, bob.id, texts))
    stores.apply(lambda st_: st_.memories.search(query, limit=limit))
    stores.apply(lambda st_: st_.memories.search(query, limit=limit, where={"user_id": ada.id}))
    stores.apply(lambda st_: st_.for_user(bob.id).documents.search(query, limit=limit))
    stores.apply(lambda st_: st_.documents.search(query, limit=limit))
    stores.apply(
        lambda st_: st_.memories.recall(ada.id, text=query, embedding=[1.0, 0.5], limit=limit)
    )
