"""Text search: the one tokenizer, the one match set and the one BM25 order.

**The tokenizer contract** (:func:`tokenize`, the same on every backend because
the core runs it; engines only index or match the tokens it produces):

1. The text is normalised to Unicode NFC, then case-folded with
   :meth:`str.casefold` (``"Straße"`` -> ``"strasse"``), then NFC again.
2. A token is a maximal run of Unicode letters and digits (characters for which
   :meth:`str.isalnum` is true, ``[^\\W_]`` in :mod:`re`). Everything else
   separates tokens: spaces, punctuation, symbols, the underscore, combining
   marks left after NFC. ``"e-mail"`` is two tokens, ``"user_id"`` too.
3. Accents are **kept**: ``"café"`` and ``"cafe"`` are different tokens. Folding
   them is language-dependent (German ``ä`` is not ``a``, Spanish ``ñ`` is not
   ``n``), so clonestore leaves it to the caller (index a folded copy of the
   text in a field of its own if it wants that).
4. No stemming and no stop words: ``"runs"`` does not find ``"run"``, and
   ``"the"`` is a word like any other.

**The query** (:func:`parse_query`): the query text is split the same way; a
part in double quotes (``"red car"``) is a phrase, its tokens consecutive in one
field. **Every** term and every phrase must match (AND); a row matches when each
query term occurs in at least one of the searched fields and each phrase occurs
within one field. An unclosed quote is ignored (its words are plain terms). A
query without a single token is a :class:`~clonestore.ValidationError`.

**The order is BM25** (:func:`bm25`), with :data:`K1` = 1.2 and :data:`B` = 0.75
and Lucene's non-negative idf::

    score(D) = sum over distinct query terms t of
               idf(t) * tf(t, D) * (K1 + 1) / (tf(t, D) + K1 * (1 - B + B * |D| / avgdl))
    idf(t)   = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))

``tf(t, D)`` counts ``t`` over all the searched fields of row ``D``, ``|D|`` is
its number of tokens over those fields. The **statistics are those of the rows
searched**: ``N`` the number of rows matching the search's ``where`` (a user's
live documents, say), ``avgdl`` their mean length and ``n(t)`` how many of them
hold ``t``. A user's scores therefore never depend on another user's rows. The
terms are summed in sorted order, so the score is the same float everywhere;
results come highest score first, ties by id.

**Hybrid recall** fuses rankings by reciprocal rank fusion (:func:`fuse`):
``score(d) = sum over rankings of 1 / (k + rank(d))`` with ``rank`` from 1 and
:data:`RRF_K` = 60 (Cormack et al., 2009); ties by id.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from clonestore.errors import ValidationError

__all__ = [
    "K1",
    "RRF_K",
    "B",
    "TextQuery",
    "bm25",
    "bm25_idfs",
    "bm25_scores",
    "field_tokens",
    "fuse",
    "matches_query",
    "parse_query",
    "search_reference",
    "tokenize",
]

#: BM25's term-frequency saturation.
K1: Final = 1.2
#: BM25's length normalisation.
B: Final = 0.75
#: Reciprocal rank fusion's constant.
RRF_K: Final = 60
#: The longest query (characters) a search takes.
MAX_QUERY_LENGTH: Final = 10_000

_TOKEN: Final = re.compile(r"[^\W_]+")
#: ASCII text's separators (every ASCII character but letters and digits) -> space.
_ASCII_SEPARATORS: Final = str.maketrans(
    {chr(c): " " for c in range(128) if not chr(c).isalnum()}
)


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``, in order (see the module's contract)."""
    if text.isascii():  # NFC and casefold are lower(); the regex is a split (same tokens)
        return text.lower().translate(_ASCII_SEPARATORS).split()
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return _TOKEN.findall(folded)


@attrs.frozen
class TextQuery:
    """A parsed query: its plain ``terms`` and its ``phrases`` (each two tokens or more),
    and ``all_terms``, every distinct token of both, sorted."""

    terms: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]
    all_terms: tuple[str, ...]


def parse_query(text: Any) -> TextQuery:
    """The query ``text`` parsed by the contract.

    :raises ValidationError: not a string, too long, or without a token.
    """
    if not isinstance(text, str):
        raise ValidationError(f"must be text, got {type(text).__name__}", field="text")
    if len(text) > MAX_QUERY_LENGTH:
        raise ValidationError(
            f"at most {MAX_QUERY_LENGTH} characters, got {len(text)}", field="text"
        )
    parts = text.split('"')
    if len(parts) % 2 == 0:  # an unclosed quote: its words are plain terms
        parts[-2:] = [parts[-2] + " " + parts[-1]]
    terms: list[str] = []
    phrases: list[tuple[str, ...]] = []
    for i, part in enumerate(parts):
        tokens = tokenize(part)
        if i % 2 == 1 and len(tokens) > 1:
            phrases.append(tuple(tokens))
        else:
            terms.extend(tokens)
    terms = list(dict.fromkeys(terms))
    phrases = list(dict.fromkeys(phrases))
    everything = sorted({*terms, *(t for p in phrases for t in p)})
    if not everything:
        raise ValidationError("a text query needs at least one word", field="text")
    return TextQuery(tuple(terms), tuple(phrases), tuple(everything))


def field_tokens(row: Mapping[str, Any], fields: Sequence[str]) -> list[list[str]]:
    """The tokens of each searched field of ``row``: a text field's, and each item of a
    list field (tags) as a field of its own (a phrase never spans two items). NULL has
    none."""
    out: list[list[str]] = []
    for name in fields:
        value = row[name]
        if value is None:
            continue
        if isinstance(value, str):
            out.append(tokenize(value))
        else:
            out.extend(tokenize(item) for item in value if isinstance(item, str))
    return out


def _has_phrase(tokens: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    first = phrase[0]
    for i in range(len(tokens) - n + 1):
        if tokens[i] == first and tuple(tokens[i : i + n]) == tuple(phrase):
            return True
    return False


def matches_query(fields: Sequence[Sequence[str]], query: TextQuery) -> bool:
    """Whether a row with these field tokens matches ``query``: every term in some
    field, every phrase within one field."""
    present = {t for tokens in fields for t in tokens}
    if any(t not in present for t in query.all_terms):
        return False
    return all(any(_has_phrase(tokens, p) for tokens in fields) for p in query.phrases)


def bm25(
    tfs: Mapping[str, int],
    length: int,
    document_frequency: Mapping[str, int],
    rows: int,
    average_length: float,
    terms: Iterable[str],
) -> float:
    """The BM25 score of one row (see the module's formula): ``tfs`` its count of each
    query term, ``length`` its token count; the statistics of the rows searched."""
    score = 0.0
    for term in sorted(terms):
        tf = tfs.get(term, 0)
        if not tf:
            continue
        n = document_frequency[term]
        idf = math.log(1.0 + (rows - n + 0.5) / (n + 0.5))
        norm = K1 * (1.0 - B + B * length / average_length) if average_length else K1
        score += idf * tf * (K1 + 1.0) / (tf + norm)
    return score


def bm25_idfs(
    document_frequency: Mapping[str, int], rows: int, terms: Iterable[str]
) -> list[tuple[str, float]]:
    """Each of ``terms`` (sorted: the order :func:`bm25` adds them in) with its idf, the
    floats :func:`bm25` computes (for an engine that scores with them as parameters)."""
    idfs = []
    for term in sorted(terms):
        n = document_frequency[term]
        idfs.append((term, math.log(1.0 + (rows - n + 0.5) / (n + 0.5))))
    return idfs


def bm25_scores(
    candidates: Iterable[tuple[Mapping[str, int], int]],
    document_frequency: Mapping[str, int],
    rows: int,
    average_length: float,
    terms: Iterable[str],
) -> list[float]:
    """:func:`bm25` of each ``(tfs, length)`` of ``candidates`` over the same statistics:
    the same floats, each term's idf computed once (for an index scoring many rows)."""
    idfs = bm25_idfs(document_frequency, rows, terms)
    saturation = K1 + 1.0
    base = 1.0 - B
    out = []
    for tfs, length in candidates:
        norm = K1 * (base + B * length / average_length) if average_length else K1
        score = 0.0
        for term, idf in idfs:
            tf = tfs.get(term, 0)
            if tf:
                score += idf * tf * saturation / (tf + norm)
        out.append(score)
    return out


def search_reference(
    rows: Iterable[Mapping[str, Any]],
    fields: Sequence[str],
    query: TextQuery,
    limit: int,
    tokens_of: Callable[[Mapping[str, Any]], list[list[str]]] | None = None,
) -> list[tuple[Any, float]]:
    """The meaning of text search: the best ``limit`` of ``rows`` (the rows searched,
    those matching the search's ``where``) matching ``query`` in ``fields``, with their
    BM25 scores, highest first, ties by id.

    ``tokens_of(row)``, if given, returns :func:`field_tokens` of the row (from a cache
    of a backend's own; it must be exactly that)."""
    total = 0
    total_length = 0
    frequency: dict[str, int] = dict.fromkeys(query.all_terms, 0)
    candidates: list[tuple[Mapping[str, Any], dict[str, int], int]] = []
    wanted = query.all_terms
    for row in rows:
        tokens = field_tokens(row, fields) if tokens_of is None else tokens_of(row)
        total += 1
        length = sum(map(len, tokens))
        total_length += length
        counts = {}
        for term in wanted:
            tf = sum(ts.count(term) for ts in tokens)  # list.count: in C
            if tf:
                counts[term] = tf
                frequency[term] += 1
        if len(counts) == len(wanted) and matches_query(tokens, query):
            candidates.append((row, counts, length))
    if not candidates:
        return []
    average = total_length / total
    scored = [
        (row, bm25(counts, length, frequency, total, average, wanted))
        for row, counts, length in candidates
    ]
    scored.sort(key=lambda pair: (-pair[1], pair[0]["id"]))
    return scored[:limit]


def fuse(rankings: Iterable[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ``rankings`` (ids, best first): every id with its fused
    score ``sum(1 / (k + rank))``, highest first, ties by id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
