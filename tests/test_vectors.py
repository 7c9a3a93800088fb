"""clonestore.vectors: the reference meaning of nearest-k, and settle()'s exactness over an
engine that computes in single precision with the worst rounding its error bound allows."""

from __future__ import annotations

import array
import math
import random
import warnings
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clonestore.errors import ValidationError
from clonestore.schema import Column, float32_vector
from clonestore.vectors import (
    FLOAT32_ROUNDOFF,
    METRICS,
    engine_distance,
    engine_safe,
    error_bound,
    nearest_reference,
    score,
    score_many,
    settle,
)


def _rows(vectors: list[list[float]]) -> list[dict[str, Any]]:
    return [{"id": f"{i:04d}", "v": v} for i, v in enumerate(vectors)]


def _float32_engine(
    rows: list[dict[str, Any]], query: list[float], metric: str, push: float, calls: list[int]
) -> Any:
    """An engine ranking by float32 distances moved by ``push`` times the error bound, in
    a direction chosen per row (the worst a correct float32 engine could do)."""
    with np.errstate(all="ignore"):
        q32 = np.asarray(query, dtype=np.float32)
    qnorm = math.sqrt(math.fsum(x * x for x in query))
    top = _max_norm(rows, query)
    listed = []
    for row in rows:
        v = row["v"]
        if len(v) != len(query):
            continue
        if not engine_safe(v):
            listed.append((row, None))
            continue
        with np.errstate(all="ignore"):
            v32 = np.asarray(v, dtype=np.float32)
            if metric == "cosine":
                norms = float(np.linalg.norm(v32)) * float(np.linalg.norm(q32))
                distance = float("nan") if norms == 0 else 1.0 - float(v32 @ q32) / norms
            elif metric == "ip":
                distance = -float(v32 @ q32)
            else:
                distance = float(np.linalg.norm(v32 - q32))
        exact = score(metric, query, v)
        worst = 0.0 if exact is None else engine_distance(metric, exact)
        bound = error_bound(metric, len(query), qnorm, worst, FLOAT32_ROUNDOFF, max_norm=top)
        sign = 1 if int(row["id"]) % 2 else -1
        listed.append((row, distance + sign * push * bound))
    listed.sort(key=lambda item: (item[1] is not None, math.inf if item[1] is None or
                                  math.isnan(item[1]) else item[1]))  # fmt: skip

    def fetch(n: int) -> list[tuple[dict[str, Any], float | None]]:
        calls.append(n)
        return listed[:n]

    return fetch


def _max_norm(rows: list[dict[str, Any]], query: list[float]) -> float:
    """The largest norm of the rows an engine scores (of the query's dimension, safe)."""
    norms = [
        math.sqrt(math.fsum(x * x for x in row["v"]))
        for row in rows
        if len(row["v"]) == len(query) and engine_safe(row["v"])
    ]
    return max(norms, default=0.0)


_items = st.one_of(
    st.floats(-2, 2, allow_nan=False).map(lambda f: round(f, 2)),
    st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e300]),
)


@settings(max_examples=150, deadline=None)
@given(
    vectors=st.lists(st.lists(_items, min_size=3, max_size=3), max_size=60),
    query=st.lists(_items, min_size=3, max_size=3).filter(any),
    metric=st.sampled_from(METRICS),
    limit=st.integers(1, 12),
    push=st.sampled_from([0.0, 0.99]),
)
def test_settle_is_exact_over_a_worst_case_float32_engine(
    vectors: list[list[float]], query: list[float], metric: str, limit: int, push: float
) -> None:
    """settle() returns exactly the reference's rows, order and scores from a float32
    ranking pushed to its error bound, duplicates, zero and unscorable vectors included."""
    rows = _rows(vectors)
    calls: list[int] = []
    fetch = _float32_engine(rows, query, metric, push, calls)
    top = _max_norm(rows, query)
    got = settle(
        fetch, lambda: rows, "v", query, metric, limit, None, FLOAT32_ROUNDOFF,
        max_norm=lambda: top,
    )  # fmt: skip
    assert got == nearest_reference(rows, "v", query, metric, limit)


def test_settle_asks_for_few_candidates_on_embeddings() -> None:
    """On 2,000 random 384-dimensional embeddings the first request (limit plus a margin)
    proves the answer: the margin is a bound, not a guess, and it is small."""
    rng = random.Random(1)
    rows = _rows([[rng.gauss(0, 1) for _ in range(384)] for _ in range(2000)])
    query = [rng.gauss(0, 1) for _ in range(384)]
    for metric in METRICS:
        calls: list[int] = []
        fetch = _float32_engine(rows, query, metric, 0.0, calls)
        top = _max_norm(rows, query)
        got = settle(
            fetch, lambda: rows, "v", query, metric, 10, None, FLOAT32_ROUNDOFF,
            max_norm=lambda top=top: top,
        )  # fmt: skip
        assert got == nearest_reference(rows, "v", query, metric, 10)
        assert calls == [16], metric


def test_reference_ties_by_id_and_cutoffs() -> None:
    """Equal scores come in id order; a cutoff keeps scores at least it (cosine) or
    distances at most it (l2); zero vectors and other dimensions are never returned."""
    rows = _rows([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0, 0.0], [-1.0, 0.0]])
    cosine = nearest_reference(rows, "v", [1.0, 0.0], "cosine", 10)
    assert [r["id"] for r, _ in cosine] == ["0000", "0001", "0003", "0005"]
    cut = nearest_reference(rows, "v", [1.0, 0.0], "cosine", 10, cutoff=0.5)
    assert [r["id"] for r, _ in cut] == ["0000", "0001", "0003"]
    l2 = nearest_reference(rows, "v", [1.0, 0.0], "l2", 10, cutoff=1.0)
    assert [(r["id"], s) for r, s in l2] == [("0001", 0.0), ("0000", 1.0), ("0002", 1.0),
                                            ("0003", 1.0)]  # fmt: skip


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_scores_survive_extreme_magnitudes(metric: str) -> None:
    """Scores of vectors near the float64 limits are finite where the value is (scaling by
    powers of two, exact), so such memories are ranked, not lost."""
    value = score(metric, [1e300, 1e300], [1e300, 0.0])
    assert value is not None
    assert math.isfinite(value)
    assert score("cosine", [1.0, 0.0], [5e-324, 0.0]) == 1.0


def test_inner_product_meaning() -> None:
    """ip: the dot product, highest first, ties by id; zero vectors score 0 and a zero
    query ties every row at 0; products beyond the double range are infinite, not lost;
    a cutoff keeps scores at least it."""
    rows = _rows([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [3.0]])
    got = nearest_reference(rows, "v", [1.0, 0.5], "ip", 10)
    assert [(r["id"], s) for r, s in got] == [("0000", 2.0), ("0003", 1.5), ("0001", 1.0),
                                             ("0002", 0.0), ("0004", -1.0)]  # fmt: skip
    zero = nearest_reference(rows, "v", [0.0, 0.0], "ip", 3)
    assert [(r["id"], s) for r, s in zero] == [("0000", 0.0), ("0001", 0.0), ("0002", 0.0)]
    cut = nearest_reference(rows, "v", [1.0, 0.5], "ip", 10, cutoff=1.0)
    assert [r["id"] for r, _ in cut] == ["0000", "0003", "0001"]
    assert score("ip", [1e300, 1e300], [1e300, 0.0]) == math.inf
    assert score("ip", [1e300, 0.0], [-1e300, 0.0]) == -math.inf
    assert score("ip", [1e-300, 0.0], [1e-300, 0.0]) == 0.0
    assert score("ip", [1e200, 1.0], [1e-200, 0.0]) == 1.0


def test_settle_without_a_norm_bound_scores_every_row_for_ip() -> None:
    """Without max_norm an ip search cannot prove a margin: it scores every row (scan)."""
    rows = _rows([[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]])

    def fetch(n: int) -> Any:
        raise AssertionError("the engine is not asked")

    got = settle(fetch, lambda: rows, "v", [1.0, 0.0], "ip", 2, None, FLOAT32_ROUNDOFF)
    assert got == nearest_reference(rows, "v", [1.0, 0.0], "ip", 2)


_extreme_items = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-310, 1e-300, 1e300, -1e300, 1.0]),
)


@settings(max_examples=300, deadline=None)
# Issue 21: found on a fresh machine (an OverflowError from l2), and l2 and cosine rows
# whose products overflow only in the unscaled sum score_many made before rescoring them.
@example(
    query=[1.797693124862316e308, 0.0, 0.0],
    vectors=[[-9.999999900163214e299, 0.0, 0.0]],
    metric="l2",
)
@example(query=[1.0, 1.0], vectors=[[1.3e154, 1.3e154], [1.0, 2.0]], metric="l2")
@example(query=[1.0, 1.0], vectors=[[1.3e154, 1.3e154], [1.0, 2.0]], metric="cosine")
@example(query=[1e100, 1e100], vectors=[[1e300, -1e300], [1.0, 2.0]], metric="ip")
@given(
    query=st.lists(_extreme_items, min_size=1, max_size=6),
    vectors=st.lists(
        st.one_of(st.none(), st.lists(_extreme_items, min_size=1, max_size=6)), max_size=8
    ),
    metric=st.sampled_from(METRICS),
)
def test_score_many_is_score_bit_for_bit(
    query: list[float], vectors: list[list[float] | None], metric: str
) -> None:
    """score_many() gives exactly score() for each vector: any magnitude, other
    dimensions, NULLs, zero vectors, every metric."""
    want = [score(metric, query, v) for v in vectors]
    got = score_many(metric, query, vectors)
    assert [None if w is None else w.hex() for w in want] == [
        None if g is None else g.hex() for g in got
    ]


_VECTOR = Column(name="embedding", kind="vector", max_length=16_384, min_length=1)
_FINITE_NUMBERS = "embedding: vector items must be finite numbers"
_IN_RANGE = "embedding: vector items must be finite numbers within float32's range"


def _checked(value: Any) -> str:
    """float32_vector's answer for ``value``: the float32 items' hex, or the refusal."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning is a failure too
        try:
            return " ".join(float(x).hex() for x in float32_vector(_VECTOR, value))
        except ValidationError as error:
            return str(error) if error.field == "embedding" else f"field {error.field!r}"


def test_float32_vector_refuses_bools_wherever_they_hide() -> None:
    """A bool among a list's numbers is refused, with or without 0s and 1s beside it (the
    items' types are scanned only when numpy read a 0 or a 1, which a bool becomes)."""
    floats = np.random.default_rng(7).standard_normal(384).tolist()
    for bool_item in (True, False, np.bool_(True), np.bool_(False)):
        for place in (0, 200, 383):
            for others in (floats, [*floats[:100], 0.0, 1.0, *floats[102:]]):
                items = list(others)
                items[place] = bool_item
                assert _checked(items) == _FINITE_NUMBERS, (bool_item, place)
                assert _checked(tuple(items)) == _FINITE_NUMBERS, (bool_item, place)
                # The bool's refusal comes before any other (NaN, too many items).
                assert _checked([*items, math.nan]) == _FINITE_NUMBERS
                assert _checked(items * 50) == _FINITE_NUMBERS
    assert _checked([1, 0, 1.0, 0.0, np.int64(1), np.float32(0.0)]) == " ".join(
        x.hex() for x in (1.0, 0.0, 1.0, 0.0, 1.0, 0.0)
    )


def test_float32_vector_checks_every_form_the_same_way() -> None:
    """Lists, tuples, arrays of any float dtype and buffers give the same float32 items
    (tiny ones and -0.0 flushed) or the same refusal, and never a numpy warning."""
    values = [0.1, -2.5, 1 / 3, 3.4e38, -0.0, 1e-33, 2.0**-50, 1e-46, 123456789.125]
    expected = " ".join(
        float(np.float32(x) if abs(np.float32(x)) >= 2.0**-50 else 0.0).hex() for x in values
    )
    forms: list[Any] = [
        values, tuple(values), np.asarray(values), list(np.asarray(values)),
        array.array("d", values), memoryview(array.array("d", values)),
        np.asarray(values, np.float32), list(np.asarray(values, np.float32)),
        array.array("f", values), np.asarray([values, values]).T[:, 0],
    ]  # fmt: skip
    for form in forms:
        assert _checked(form) == expected, type(form)
    bad = {
        _IN_RANGE: [
            [1.0, math.nan], [1.0, math.inf], [3.5e38, 1.0], [-1e300], np.asarray([1e39]),
            np.asarray([math.inf, -math.inf], np.float32), np.asarray([-math.inf], np.float16),
            array.array("d", [1.0, math.nan]), np.asarray([math.nan, 1.0], np.longdouble),
        ],
        _FINITE_NUMBERS: [
            [Decimal(1), 2.0], [Fraction(1, 2)], ["1.5"], [None], [[1.0, 2.0]], [[1.0], 2.0],
            np.zeros((2, 2)), np.asarray([True, False]), np.asarray(["1.0"]),
        ],
    }  # fmt: skip
    for message, forms in bad.items():
        for form in forms:
            assert _checked(form) == message, repr(form)
