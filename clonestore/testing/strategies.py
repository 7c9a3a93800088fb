"""Hypothesis strategies for clonestore values, reaching the corners where engines differ.

Valid values exercise what every backend must store and compare identically
(Unicode case pairs, combining characters, LIKE metacharacters, 64-bit edges,
floats near the limits, microseconds, non-UTC offsets, deep JSON, empty lists);
invalid values are what every backend must refuse identically.

They ship with the kit (the differential properties of
:mod:`clonestore.testing.properties` draw from them, and a backend's or an
application's own property tests may too). This is their one definition:
clonestore's ``tests/strategies.py`` only re-exports it. Needs ``hypothesis``.
"""

from __future__ import annotations

import math
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "TRICKY_CHARS",
    "aware_datetimes",
    "bad_json",
    "bad_money",
    "bad_text",
    "deep_json",
    "domains",
    "emails",
    "finite_floats",
    "int64",
    "json_keys",
    "json_lookups",
    "json_lookups_near",
    "json_metadata",
    "json_probes",
    "json_scalars",
    "json_scalars_in",
    "json_values",
    "local_parts",
    "money",
    "naive_datetimes",
    "non_finite",
    "nonempty_text",
    "offsets",
    "out_of_range_ints",
    "safe_chars",
    "short_name",
    "tag_lists",
    "text",
    "tiny_vector_items",
    "unit_floats",
    "vectors",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Characters that break naive implementations: case-folding pairs (ß/SS,
#: Turkish dotted and dotless i, final sigma, ligatures), combining marks,
#: SQL LIKE metacharacters and escapes, quotes, astral code points.
TRICKY_CHARS = [
    "ß",
    "SS",
    "ss",
    "ẞ",
    "İ",
    "i̇",
    "\u0131",
    "I",
    "i",
    "ς",
    "\u03c3",
    "Σ",
    "ﬁ",
    "ǅ",
    "e\u0301",
    "é",
    "\u0301",
    "%",
    "_",
    "\\",
    "'",
    '"',
    ";",
    "--",
    "😀",
    "\U0001f9d1\u200d\U0001f52c",
    "a",
    "A",
    "z",
    "Z",
    "0",
    " ",
    "\t",
    "\n",
    "\u00a0",
    "\uffff",
    "\U0010ffff",
]

#: Text every backend must accept: no NUL, no lone surrogates.
safe_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
text = st.one_of(
    st.lists(st.sampled_from(TRICKY_CHARS), max_size=6).map("".join),
    st.text(safe_chars, max_size=20),
    st.text(string.ascii_letters + "%_\\", max_size=8),
)
nonempty_text = text.filter(bool)
short_name = st.lists(st.sampled_from(TRICKY_CHARS), min_size=1, max_size=4).map("".join)

#: Text every backend must refuse.
bad_text = st.one_of(
    st.tuples(text, text).map(lambda t: t[0] + "\x00" + t[1]),
    st.tuples(text, st.sampled_from(["\ud800", "\udfff", "\udc00"])).map("".join),
)

local_parts = st.lists(
    st.sampled_from(
        [
            "ada",
            "ADA",
            "Ada",
            "straße",
            "STRASSE",
            "İrem",
            "irem",
            "o'neil",
            "a_b",
            "a%b",
            "x.y",
            "zoë",
            "ZOË",
        ]
    ),
    min_size=1,
    max_size=2,
).map("".join)
domains = st.sampled_from(["example.com", "EXAMPLE.com", "exämple.org", "b.io"])
emails = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)

int64 = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]),
)
out_of_range_ints = st.one_of(
    st.integers(max_value=INT64_MIN - 1), st.integers(min_value=INT64_MAX + 1)
)

finite_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            0.0,
            -0.0,
            1.0,
            1e16,
            1e300,
            -1e300,
            5e-324,
            2.2250738585072014e-308,
            1.7976931348623157e308,
            0.1,
            1 / 3,
        ]
    ),
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
unit_floats = st.floats(0.0, 1.0)

money = st.decimals(
    min_value=0, max_value=Decimal("999999.999999"), places=6, allow_nan=False, allow_infinity=False
)
bad_money = st.one_of(
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("0.0000001"), Decimal("-1")]),
)

offsets = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=-8)),
        timezone(timedelta(hours=14)),
    ]
)
aware_datetimes = st.builds(
    lambda dt, tz: dt.replace(tzinfo=UTC).astimezone(tz),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    offsets,
)
naive_datetimes = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1))

json_scalars = st.one_of(st.none(), st.booleans(), int64, finite_floats, text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(text, children, max_size=4),
    ),
    max_leaves=12,
)


def deep_json(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


bad_json = st.one_of(
    non_finite.map(lambda f: {"x": f}),
    st.just({1: "non-string key"}),
    st.just(deep_json(40)),
    st.just({"bytes": b"x"}),
    bad_text.map(lambda t: {"k": t}),
)

#: Keys of JSON objects in the JSON lookup properties: few, so that lookups meet the
#: stored keys, with path syntax of the engines in them (a quote, a dot) and a key
#: that looks like an array index.
json_keys = st.sampled_from(["k", 'q"k.0', "0"])
#: Values the JSON lookup properties store and compare: every JSON type, numbers equal
#: across int and float, strings that look like numbers and booleans, big integers
#: (exact) and code-point orders that differ from collations. Floats stay small: an
#: integer beyond 2**53 compared with a float may compare differently by engine.
json_probes = st.one_of(
    # Half the time one of the values an engine's loose comparison confuses.
    st.sampled_from([None, True, False, 0, 1, 1.0, "1", "true"]),
    st.sampled_from([-1, 2.5, 2**62, 2**62 + 1, "", "a", "A", "a ", "é", 'q"\\']),
)
_json_items = st.integers(0, 9).flatmap(
    lambda n: (
        json_probes
        if n < 8
        else st.fixed_dictionaries({}, optional=dict.fromkeys(["k", 'q"k.0', "0"], json_probes))
        if n == 8
        else st.lists(json_probes, max_size=2)
    )
)
#: JSON objects for the JSON lookup properties: each of :data:`json_keys` present about
#: half the time, most values scalars.
json_metadata = st.fixed_dictionaries({}, optional=dict.fromkeys(["k", 'q"k.0', "0"], _json_items))


def _json_lookup(
    path: list[str], probes: st.SearchStrategy[Any]
) -> st.SearchStrategy[tuple[str, Any]]:
    name = "metadata__" + "__".join(path)
    ordered = probes.filter(lambda v: v is not None and type(v) is not bool)
    return st.one_of(
        probes.map(lambda v: (name, v)),
        probes.map(lambda v: (f"{name}__ne", v)),
        st.tuples(st.sampled_from(["lt", "lte", "gt", "gte"]), ordered).map(
            lambda t: (f"{name}__{t[0]}", t[1])
        ),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(probes, max_size=3)).map(
            lambda t: (f"{name}__{t[0]}", t[1])
        ),
        st.booleans().map(lambda b: (f"{name}__isnull", b)),
        json_keys.map(lambda k: (f"{name}__has_key", k)),
    )


def _twins(value: Any) -> list[Any]:
    """``value`` and the values of other JSON types a loose comparison takes for it."""
    if value is None or type(value) is bool:
        return [value, int(bool(value)), str(value).lower(), None]
    if type(value) in (int, float):
        # No float twin beyond 2**53: there an int and a float may compare differently by
        # engine (see clonestore._json_lookups).
        twin = float(value) if abs(value) < 2**53 else value
        return [value, twin, str(value), bool(value)]
    return [value, value + " ", value.upper()]


def json_lookups_near(stored: list[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    """One JSON key lookup on ``metadata`` (name, value): a path of one or two of
    :data:`json_keys` and any lookup of the JSON lookup set, its value either one of
    :data:`json_probes` or one of ``stored`` (scalars the documents hold) or a value of
    another JSON type that looks like it (``1``, ``1.0``, ``"1"``, ``True``)."""
    near = [twin for value in stored for twin in _twins(value)]
    probes = st.one_of(json_probes, st.sampled_from(near)) if near else json_probes
    one = json_keys.map(lambda k: [k])
    paths = st.one_of(one, one, one, st.lists(json_keys, min_size=2, max_size=2))
    return paths.flatmap(lambda path: _json_lookup(path, probes))


def json_scalars_in(document: Any) -> list[Any]:
    """The scalars a JSON document holds, at any depth."""
    if isinstance(document, dict):
        return [s for v in document.values() for s in json_scalars_in(v)]
    if isinstance(document, list):
        return [s for v in document for s in json_scalars_in(v)]
    return [document]


#: One JSON key lookup on ``metadata``: :func:`json_lookups_near` no stored values.
json_lookups = json_lookups_near([])

tag_lists = st.lists(st.sampled_from(["a", "b", "c", "ß", "SS", "%", "_", "\\", ""]), max_size=5)
#: Vector items a store flushes to 0 or keeps at the edge: below ``2**-50`` in magnitude
#: after float32 rounding (real embeddings hold such items: all-MiniLM-L6-v2 writes about
#: 1e-33 in two dimensions of every vector), and ``2**-50`` itself, the smallest kept.
tiny_vector_items = st.sampled_from(
    [1e-33, -1.6e-33, 1e-40, 1e-46, 2.0**-51, 8.881784e-16, 2.0**-50, -(2.0**-50), -0.0]
)
vectors = st.lists(
    st.one_of(
        st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(lambda f: round(f, 3)),
        tiny_vector_items,
    ),
    min_size=3,
    max_size=3,
)
