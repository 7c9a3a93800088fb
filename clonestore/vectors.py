"""Vector search: the one meaning of nearest-k, and how engines reach it exactly.

**The reference meaning** (:func:`nearest_reference`, what ``memory://``
defines and the kit checks everywhere). Rows are compared with a query vector
by a metric of :data:`METRICS`:

* ``cosine``: cosine similarity in [-1, 1], best = highest. A vector of zero
  norm has no cosine similarity and is never returned (a zero query is refused
  by the caller).
* ``l2``: Euclidean distance, best = lowest.
* ``ip``: inner (dot) product, best = highest. Zero vectors score 0 (a zero
  query scores every row 0: they then come by id). A product beyond the
  double range scores ``inf`` or ``-inf``.

Only rows whose vector has the query's dimension are compared; NULL vectors
are skipped. Results come best first, ties broken by id (ascending), at most
``limit``; ``cutoff`` drops results worse than it (a minimum similarity for
cosine and ip, a maximum distance for l2). Scores are those of :func:`score`, computed
in double precision from the stored float64 values, so every backend that
settles its results with it returns bit-identical scores.

**Engines compute in single precision** (pgvector, sqlite-vec) or in another
summation order (BLAS). :func:`settle` turns an engine's approximate ranking
into the exact answer: the engine lists candidates by its own distance, the
exact scores are computed here, and the engine is asked for more candidates
until the last one it listed is provably worse than any row of the exact top-k.
The proof needs a bound on the engine's rounding error (:func:`error_bound`),
which holds for vectors whose items are 0 or within ``2**-50 .. 2**50`` in
magnitude (:func:`engine_safe`): no overflow or underflow of products in
float32 for up to 16,384 dimensions. Rows outside that range are not scored by
the engine at all: the engine lists them first, and they are scored here.

**Stored values are float32, tiny items flushed** (:func:`float32_values`, what
``clonestore.schema.float32_vector`` does to every vector written and every
query): each item is rounded to the nearest float32, and items below ``2**-50``
in magnitude become 0, so every vector written is within the engines' range at
the low end and the engine scores it (real embeddings have such items). Only
vectors with items beyond ``2**50``, and tiny items stored by versions before
the flush (they keep their values; rewriting a memory's embedding flushes
them), take the scoring-here path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import mul
from typing import Any, Final

import numpy as np

__all__ = [
    "FLOAT32_ROUNDOFF",
    "FLOAT64_ROUNDOFF",
    "METRICS",
    "SAFE_MAX",
    "SAFE_MIN",
    "engine_distance",
    "engine_safe",
    "error_bound",
    "float32_values",
    "nearest_reference",
    "score",
    "score_many",
    "settle",
]

#: Vector-search metrics: ``cosine`` (similarity, higher is better), ``l2``
#: (distance, lower is better) and ``ip`` (inner product, higher is better).
METRICS: Final = ("cosine", "l2", "ip")

#: Unit roundoff of IEEE single and double precision.
FLOAT32_ROUNDOFF: Final = 2.0**-24
FLOAT64_ROUNDOFF: Final = 2.0**-53
#: Magnitudes of vector items an engine may score (besides 0): see :func:`engine_safe`.
SAFE_MIN: Final = 2.0**-50
SAFE_MAX: Final = 2.0**50
_FLUSH_BELOW: Final = np.float32(SAFE_MIN)
_ZERO32: Final = np.float32(0.0)
# Smallest normal float32: squares of item differences below sqrt(this) may underflow.
_FLOAT32_TINY: Final = 2.0**-126
# Outside this range products and sums of squares could overflow or underflow double
# precision: such vectors are scored scaled by a power of two (exact).
_SCALE_ABOVE: Final = 2.0**400
_SCALE_BELOW: Final = 2.0**-400


#: Rows the reference scores per numpy batch (bounds its memory).
_SCORED_AT_ONCE: Final = 1024


def float32_values(vector: Sequence[float]) -> list[float]:
    """The values a store keeps of ``vector`` (what a memory's embedding reads back as,
    and what a query is scored as): each item rounded to the nearest float32, then
    items below :data:`SAFE_MIN` (``2**-50``) in magnitude, and ``-0.0``, become ``0.0``.

    The flush keeps every stored vector within :func:`engine_safe`'s range at the low
    end, so engines score all of them (embedding models write such items: every
    all-MiniLM-L6-v2 vector has two near ``1e-33``). An item below ``2**-50`` adds
    less than ``2**-50`` times the other vector's item to an inner product: for unit
    vectors, far below float32's rounding of the other items (about ``2**-24``
    relative), and ``1e-33`` items change no double-precision score of a pair of
    all-MiniLM-L6-v2 vectors at all."""
    rounded = np.asarray(vector, dtype=np.float32)
    flushed: list[float] = np.where(np.abs(rounded) < _FLUSH_BELOW, _ZERO32, rounded).tolist()
    return flushed


def _needs_scaling(top: float) -> bool:
    return top > _SCALE_ABOVE or 0.0 < top < _SCALE_BELOW


Row = dict[str, Any]
#: A result: the row and its score.
Scored = tuple[Row, float]


def engine_safe(vector: Sequence[float]) -> bool:
    """Whether an engine may score ``vector``: every item is 0 or has a magnitude
    within ``SAFE_MIN .. SAFE_MAX`` (engines store NULL for the others)."""
    magnitude = np.abs(np.asarray(vector, dtype=np.float64))
    return not bool(((magnitude > SAFE_MAX) | ((magnitude < SAFE_MIN) & (magnitude != 0.0))).any())


def _scaled(vector: Sequence[float]) -> tuple[Sequence[float], int]:
    """``vector`` times a power of two (exact), so that its products neither overflow nor
    underflow, and the exponent to undo it."""
    top = max(map(abs, vector), default=0.0)
    if not _needs_scaling(top):
        return vector, 0
    exponent = math.frexp(top)[1]
    return [math.ldexp(x, -exponent) for x in vector], exponent


def score(metric: str, query: Sequence[float], vector: Sequence[float] | None) -> float | None:
    """The exact score of ``vector`` against ``query``, or None when they cannot be
    compared (another dimension, NULL, or a zero vector under cosine)."""
    if vector is None or len(vector) != len(query):
        return None
    if metric == "cosine":
        a, _ = _scaled(query)
        b, _ = _scaled(vector)
        norm_b = math.sqrt(math.fsum(map(mul, b, b)))
        if norm_b == 0.0:
            return None
        norm_a = math.sqrt(math.fsum(map(mul, a, a)))
        if norm_a == 0.0:
            return None
        return math.fsum(map(mul, a, b)) / (norm_a * norm_b)
    if metric == "ip":
        a, shift_a = _scaled(query)
        b, shift_b = _scaled(vector)
        dot = math.fsum(map(mul, a, b))
        try:
            return math.ldexp(dot, shift_a + shift_b)
        except OverflowError:
            return math.copysign(math.inf, dot)
    if metric == "l2":
        top = max(max(map(abs, query), default=0.0), max(map(abs, vector), default=0.0))
        if _needs_scaling(top):
            exponent = math.frexp(top)[1]
            diff = [math.ldexp(x, -exponent) - math.ldexp(y, -exponent)
                    for x, y in zip(query, vector, strict=True)]  # fmt: skip
            try:
                return math.ldexp(math.sqrt(math.fsum(map(mul, diff, diff))), exponent)
            except OverflowError:  # a distance beyond the double range
                return math.inf
        diff = [x - y for x, y in zip(query, vector, strict=True)]
        return math.sqrt(math.fsum(map(mul, diff, diff)))
    raise ValueError(f"unknown metric {metric!r}")


def score_many(
    metric: str, query: Sequence[float], vectors: Sequence[Sequence[float] | None]
) -> list[float | None]:
    """:func:`score` of each of ``vectors``, bit for bit, faster: numpy forms the
    products (each rounded as Python rounds it) and ``math.fsum`` adds them exactly,
    as :func:`score` does; vectors that need scaling are scored by :func:`score`."""
    out: list[float | None] = [None] * len(vectors)
    dimension = len(query)
    rows = [i for i, v in enumerate(vectors) if v is not None and len(v) == dimension]
    if not rows:
        return out
    q = np.asarray(query, dtype=np.float64)
    top_q = float(np.abs(q).max(initial=0.0))
    if _needs_scaling(top_q) or metric not in METRICS:
        return [score(metric, query, v) for v in vectors]
    matrix = np.asarray([vectors[i] for i in rows], dtype=np.float64)
    tops = np.abs(matrix).max(axis=1, initial=0.0)
    if metric == "l2":
        tops = np.maximum(tops, top_q)
    plain = ~((tops > _SCALE_ABOVE) | ((tops > 0.0) & (tops < _SCALE_BELOW)))
    # Only the plain rows are summed here: fsum of another row's products may overflow
    # (OverflowError) or meet inf and -inf (ValueError); score() scales those.
    matrix = matrix[plain]
    fsum = math.fsum
    with np.errstate(all="ignore"):
        if metric == "l2":
            squares = (q - matrix) ** 2
            values: list[float | None] = [math.sqrt(fsum(r)) for r in squares.tolist()]
        else:
            dots = [fsum(r) for r in (matrix * q).tolist()]
            if metric == "ip":
                values = list(dots)
            else:
                norm_q = math.sqrt(fsum((q * q).tolist()))
                norms = [math.sqrt(fsum(r)) for r in (matrix * matrix).tolist()]
                values = [
                    None if norm == 0.0 or norm_q == 0.0 else dot / (norm_q * norm)
                    for dot, norm in zip(dots, norms, strict=True)
                ]
    computed = iter(values)
    for j, i in enumerate(rows):
        out[i] = next(computed) if plain[j] else score(metric, query, vectors[i])
    return out


def _norm(vector: Sequence[float]) -> float:
    """The Euclidean norm of ``vector`` (inf when beyond the double range)."""
    scaled, exponent = _scaled(vector)
    try:
        return math.ldexp(math.sqrt(math.fsum(map(mul, scaled, scaled))), exponent)
    except OverflowError:
        return math.inf


def _order_key(metric: str) -> Callable[[Scored], tuple[float, str]]:
    if metric == "l2":
        return lambda item: (item[1], item[0]["id"])
    return lambda item: (-item[1], item[0]["id"])


def _keep(metric: str, cutoff: float | None) -> Callable[[Scored], bool]:
    if cutoff is None:
        return lambda item: True
    if metric == "l2":
        return lambda item: item[1] <= cutoff
    return lambda item: item[1] >= cutoff


def nearest_reference(
    rows: Sequence[Row],
    column: str,
    query: Sequence[float],
    metric: str,
    limit: int,
    cutoff: float | None = None,
) -> list[Scored]:
    """The reference answer: the best ``limit`` of ``rows`` (already filtered by the
    search's conditions) with their exact scores, best first, ties by id."""
    scored = []
    for start in range(0, len(rows), _SCORED_AT_ONCE):
        chunk = rows[start : start + _SCORED_AT_ONCE]
        values = score_many(metric, query, [row[column] for row in chunk])
        scored += [(row, v) for row, v in zip(chunk, values, strict=True) if v is not None]
    scored.sort(key=_order_key(metric))
    keep = _keep(metric, cutoff)
    return [item for item in scored[:limit] if keep(item)]


def engine_distance(metric: str, value: float) -> float:
    """An exact score in the engines' distance form (lower is better):
    ``1 - cosine`` (pgvector's ``<=>``, sqlite-vec's cosine distance), the L2
    distance, or ``-ip`` (pgvector's ``<#>``)."""
    if metric == "cosine":
        return 1.0 - value
    if metric == "ip":
        return -value
    return value


def error_bound(
    metric: str,
    dimension: int,
    query_norm: float,
    worst: float,
    roundoff: float,
    expanded: bool = False,
    max_norm: float = 0.0,
) -> float:
    """How far an engine's distance may be from the exact one, for any row whose exact
    distance is at most ``worst``, when the engine rounds vectors and arithmetic to
    unit roundoff ``roundoff`` (items within :func:`engine_safe`'s range).

    Standard bounds for a sum of ``n`` products in any order (|error| <= gamma_n
    times the sum of |products|, gamma_n = n*u/(1-n*u)), plus the rounding of
    every input item, with a factor of two to spare:

    * cosine distance ``1 - a.b/(|a||b|)``: the dot product is off by at most
      gamma*|a||b| (Cauchy-Schwarz) and each norm by a relative gamma, so the
      cosine by at most about 2*gamma; bound: 4*gamma + 4u.
    * L2: rounding the items moves each vector by at most u times its norm, and
      summing the squares of the differences adds a relative gamma; a row within
      ``worst`` of the query has a norm of at most ``|q| + worst``; bound:
      4*gamma*(2|q| + worst) + 4u*worst, plus what squares below float32's
      normal range may lose.
    * L2 computed ``expanded``, as ``sqrt(|q|^2 + |r|^2 - 2 q.r)`` (one matrix
      product for many rows): the squared distance is off by at most
      (gamma + 3u)(|q| + |r|)^2, and a square root by at most the square root
      of that; bound: 2*sqrt(gamma + 3u)*(2|q| + worst).
    * ip ``-q.r``: the dot product is off by at most gamma*|q||r| and rounding
      the items of both vectors by 2u|q||r|; nothing ties |r| to the distance,
      so ``max_norm`` bounds the norm of every row the engine scores; bound:
      2*(gamma + 2u)*|q|*max_norm.
    """
    n = dimension + 4
    gamma = n * roundoff / (1.0 - n * roundoff)
    if metric == "cosine":
        return 4.0 * gamma + 4.0 * roundoff
    if metric == "l2" and expanded:
        return 2.0 * math.sqrt(gamma + 3.0 * roundoff) * (2.0 * query_norm + worst)
    if metric == "l2":
        underflow = 2.0 * math.sqrt(dimension * _FLOAT32_TINY)
        return 4.0 * gamma * (2.0 * query_norm + worst) + 4.0 * roundoff * worst + underflow
    if metric == "ip":
        return 2.0 * (gamma + 2.0 * roundoff) * query_norm * max_norm
    raise ValueError(f"unknown metric {metric!r}")


#: What an engine gives :func:`settle`: ``fetch(n)`` -> the first ``n`` rows matching the
#: search's conditions (only rows of the query's dimension) in the engine's distance order,
#: each with its engine distance; rows the engine does not score (distance None) first.
Fetch = Callable[[int], Sequence[tuple[Row, float | None]]]
#: Every row matching the search's conditions (for the rare query an engine cannot score).
Scan = Callable[[], Sequence[Row]]


def settle(
    fetch: Fetch,
    scan: Scan,
    column: str,
    query: Sequence[float],
    metric: str,
    limit: int,
    cutoff: float | None,
    roundoff: float,
    expanded: bool = False,
    max_norm: Callable[[], float] | None = None,
) -> list[Scored]:
    """The exact answer of :func:`nearest_reference` from an engine's approximate ranking.

    Asks ``fetch`` for ``limit`` plus a margin, scores what it lists exactly, and
    stops once the engine's distance of the last row listed exceeds the exact
    distance of the ``limit``-th best found plus :func:`error_bound`: every row
    the engine did not list is then provably worse than the ``limit`` found (a row
    of the exact top-k has an exact distance of at most that of the ``limit``-th
    best found, so an engine distance of at most that plus the bound). Otherwise
    it asks for four times as many. NaN engine distances count as infinite.
    ``roundoff`` and ``expanded`` describe the engine's arithmetic (see
    :func:`error_bound`); for ``ip`` the bound needs ``max_norm()``, an upper
    bound of the norm of every row the engine scores (asked once, when needed;
    without it an ``ip`` search scores every matching row here). A query outside
    :func:`engine_safe`'s range cannot be ranked by the engine: then every
    matching row (``scan``) is scored here.
    """
    if limit < 1:
        return []
    if not engine_safe(query) or (metric == "ip" and max_norm is None):
        return nearest_reference(scan(), column, query, metric, limit, cutoff)
    query_norm = _norm(query)
    rows_norm: float | None = None
    key = _order_key(metric)
    # A first margin (every candidate is scored exactly, so a small one is cheaper; a
    # search it does not prove asks again): a few for double precision, more for single.
    wanted = limit + (2 if roundoff <= FLOAT64_ROUNDOFF else max(limit // 2, 6))
    while True:
        listed = fetch(wanted)
        values = score_many(metric, query, [row[column] for row, _ in listed])
        scored = [(row, v) for (row, _), v in zip(listed, values, strict=True) if v is not None]
        scored.sort(key=key)
        best = scored[:limit]
        done = len(listed) < wanted
        if not done and len(best) == limit and listed[-1][1] is not None:
            last = listed[-1][1]
            worst = engine_distance(metric, best[-1][1])
            if metric == "ip" and rows_norm is None:
                rows_norm = max_norm() if max_norm is not None else math.inf
            bound = error_bound(
                metric, len(query), query_norm, worst, roundoff, expanded, rows_norm or 0.0
            )
            # 4 double-precision ulps of slack for the comparison itself.
            slack = 4 * FLOAT64_ROUNDOFF * (1 + abs(worst))
            done = math.isnan(last) or last > worst + bound + slack
        if done:
            keep = _keep(metric, cutoff)
            return [item for item in best if keep(item)]
        wanted *= 4
