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
    "json_scalars",
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

tag_lists = st.lists(st.sampled_from(["a", "b", "c", "ß", "SS", "%", "_", "\\", ""]), max_size=5)
vectors = st.lists(
    st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(lambda f: round(f, 3)),
    min_size=3,
    max_size=3,
)
