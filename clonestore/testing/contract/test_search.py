"""Contract: text search (the tokenizer contract, the match set, BM25 order) and hybrid
recall (reciprocal rank fusion), the same on every backend."""

from __future__ import annotations

import math
from collections import Counter
from functools import partial
from typing import Any

import pytest

from clonestore import NotFound, Store, ValidationError
from clonestore.testing.contract._builders import new_document, new_user, raises, refused
from clonestore.text import K1, RRF_K, B, tokenize


def _contents(found: list[Any]) -> list[str]:
    return [f.record.content for f in found]


def _bm25(texts: list[str], query: list[str]) -> dict[str, float]:
    """BM25 of each text containing every query term, computed by hand from the formula."""
    docs = [tokenize(t) for t in texts]
    n_rows = len(docs)
    avgdl = sum(len(d) for d in docs) / n_rows
    out = {}
    for text, tokens in zip(texts, docs, strict=True):
        if not all(q in tokens for q in query):
            continue
        counts = Counter(tokens)
        score = 0.0
        for term in sorted(set(query)):
            n = sum(term in d for d in docs)
            idf = math.log(1 + (n_rows - n + 0.5) / (n + 0.5))
            tf = counts[term]
            score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(tokens) / avgdl))
        out[text] = score
    return out


def test_tokenizer_contract() -> None:
    """Tokens are NFC, case-folded runs of letters and digits; accents are kept."""
    assert tokenize("Hello, WORLD! e-mail user_id 42x") == [
        "hello", "world", "e", "mail", "user", "id", "42x"
    ]
    assert tokenize("Straße") == ["strasse"]
    assert tokenize("Cafe\u0301 café") == ["café", "café"]
    assert tokenize("café") != tokenize("cafe")
    assert tokenize("日本語 text") == ["日本語", "text"]


def test_search_every_term_must_match(store: Store) -> None:
    """search() finds the records holding every word of the query, ignoring case."""
    user = new_user(store)
    for content in ["red car", "Red bicycle", "blue CAR", "a red, red car"]:
        store.memories.add(user.id, content)
    assert sorted(_contents(store.memories.search("car RED"))) == ["a red, red car", "red car"]
    assert _contents(store.memories.search("bicycle")) == ["Red bicycle"]
    assert store.memories.search("train") == []


def test_search_phrases(store: Store) -> None:
    """A quoted phrase matches its words consecutively; an unclosed quote is plain words."""
    user = new_user(store)
    for content in ["red car", "car red", "the red old car"]:
        store.memories.add(user.id, content)
    assert _contents(store.memories.search('"red car"')) == ["red car"]
    assert sorted(_contents(store.memories.search('"red car'))) == [
        "car red", "red car", "the red old car"
    ]
    assert _contents(store.memories.search('"old car" red')) == ["the red old car"]


def test_search_accents_kept(store: Store) -> None:
    """Accented and unaccented words are different words; case folding is casefold()."""
    user = new_user(store)
    store.memories.add(user.id, "un café noir")
    store.memories.add(user.id, "a cafe au lait")
    store.memories.add(user.id, "die STRASSE")
    assert _contents(store.memories.search("CAFÉ")) == ["un café noir"]
    assert _contents(store.memories.search("cafe")) == ["a cafe au lait"]
    assert _contents(store.memories.search("straße")) == ["die STRASSE"]


def test_search_bm25_scores_and_ties(store: Store) -> None:
    """Scores are BM25 (k1 1.2, b 0.75) over the rows searched; ties come by id."""
    user = new_user(store)
    texts = [
        "tea tea tea and more tea",
        "tea",
        "coffee and tea with milk and sugar",
        "coffee",
        "milk",
        "tea",
    ]
    for text in texts:
        store.memories.add(user.id, text)
    found = store.memories.search("tea", limit=10)
    expected = _bm25(texts, ["tea"])
    assert len(found) == 4
    for item in found:
        assert item.score == pytest.approx(expected[item.record.content], rel=1e-12)
    scores = [f.score for f in found]
    assert scores == sorted(scores, reverse=True)
    twins = [f.record.id for f in found if f.record.content == "tea"]
    assert twins == sorted(twins)
    assert len(store.memories.search("tea", limit=2)) == 2


def test_search_statistics_are_the_rows_searched(store: Store) -> None:
    """Another user's rows change neither what a user finds nor its scores."""
    ada, bob = new_user(store), new_user(store)
    for text in ["tea time", "green tea", "coffee"]:
        store.memories.add(ada.id, text)
    alone = [(f.record.id, f.score) for f in store.memories.search(
        "tea", where={"user_id": ada.id})]
    for text in ["tea", "tea", "tea tea", "water"]:
        store.memories.add(bob.id, text)
    again = [(f.record.id, f.score) for f in store.memories.search(
        "tea", where={"user_id": ada.id})]
    assert again == alone
    view = store.for_user(ada.id).memories.search("tea")
    assert [(f.record.id, f.score) for f in view] == alone


def test_document_search_fields(store: Store) -> None:
    """Documents are searched by filename, text and tags; a phrase stays within one."""
    user = new_user(store)
    a = new_document(store, user, filename="warrior.txt", text_content="an old tale")
    b = new_document(store, user, filename="b.txt", text_content=None, tags=["epic", "warrior"])
    new_document(store, user, filename="c.txt", text_content="nothing here", tags=["tale"])
    ids = {d.record.id for d in store.documents.search("warrior")}
    assert ids == {a.id, b.id}
    assert [d.record.id for d in store.documents.search("warrior tale")] == [a.id]
    assert store.documents.search('"epic warrior"') == []
    assert store.documents.search('"txt an"') == []


def test_search_follows_writes(store: Store) -> None:
    """Updates, soft delete, restore and rollback change what search finds at once."""
    user = new_user(store)
    memory = store.memories.add(user.id, "likes tea")
    store.memories.update(memory.id, content="likes coffee")
    assert store.memories.search("tea") == []
    assert _contents(store.memories.search("coffee")) == ["likes coffee"]
    store.memories.delete(memory.id)
    assert store.memories.search("coffee") == []
    store.memories.restore(memory.id)
    assert _contents(store.memories.search("coffee")) == ["likes coffee"]
    try:
        with store.transaction():
            store.memories.add(user.id, "likes juice")
            assert _contents(store.memories.search("juice")) == ["likes juice"]
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert store.memories.search("juice") == []


def test_erasure_leaves_nothing_to_find(store: Store) -> None:
    """After erase_user nothing of the user's is found by search."""
    user, other = new_user(store), new_user(store)
    store.memories.add(user.id, "secret plan")
    new_document(store, user, filename="plan.txt", text_content="secret plan")
    store.memories.add(other.id, "public plan")
    store.erase_user(user.id)
    assert _contents(store.memories.search("plan")) == ["public plan"]
    assert store.documents.search("secret") == []


def test_search_refuses_bad_input(store: Store) -> None:
    """A query without words, a non-string query or a bad limit is a ValidationError."""
    user = new_user(store)
    store.memories.add(user.id, "likes tea")
    for bad in ["", "   ", "!?", '""']:
        refused(store, partial(store.memories.search, bad), what=repr(bad))
    raises(ValidationError, lambda: store.memories.search(None), "None")  # type: ignore[arg-type]
    raises(ValidationError, lambda: store.memories.search("tea", limit=-1), "limit")
    raises(ValidationError, lambda: store.memories.search("tea", limit=True), "limit bool")
    raises(ValidationError, lambda: store.memories.search("tea", where=[]), "where")  # type: ignore[arg-type]
    assert store.memories.search("tea", limit=0) == []


def test_recall_fuses_by_reciprocal_rank(store: Store) -> None:
    """recall() fuses the text and vector rankings by RRF (k 60), ties by id."""
    user = new_user(store)
    tea = store.memories.add(user.id, "tea tea", [0.0, 1.0])
    both = store.memories.add(user.id, "tea and biscuits", [1.0, 0.1])
    vector = store.memories.add(user.id, "biscuits", [1.0, 0.0])
    found = store.memories.recall(user.id, text="tea", embedding=[1.0, 0.0])
    # text: tea, both; vector (cosine): vector, both, tea
    expected = {
        tea.id: 1 / (RRF_K + 1) + 1 / (RRF_K + 3),
        both.id: 1 / (RRF_K + 2) + 1 / (RRF_K + 2),
        vector.id: 1 / (RRF_K + 1),
    }
    order = sorted(expected, key=lambda key: (-expected[key], key))
    assert [f.record.id for f in found] == order
    for item in found:
        assert item.score == pytest.approx(expected[item.record.id], rel=1e-12)
    text_only = store.memories.recall(user.id, text="biscuits", limit=1)
    assert len(text_only) == 1
    vector_only = store.memories.recall(user.id, embedding=[0.0, 1.0])
    assert vector_only[0].record.id == tea.id
    raises(ValidationError, lambda: store.memories.recall(user.id), "neither")
    raises(NotFound, lambda: store.for_user(user.id).memories.recall(
        new_user(store).id, text="tea"), "another user")


def test_document_recall_fuses_ranked_ids(store: Store) -> None:
    """documents.recall fuses the text ranking with ids ranked by a vector store."""
    user, other = new_user(store), new_user(store)
    a = new_document(store, user, filename="a.txt", text_content="warrior")
    b = new_document(store, user, filename="b.txt", text_content="poem")
    foreign = new_document(store, other, filename="c.txt", text_content="warrior")
    found = store.documents.recall(user.id, text="warrior", ranked=[foreign.id, b.id, a.id])
    assert [d.record.id for d in found] == [a.id, b.id]
    assert found[0].score == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2), rel=1e-12)
