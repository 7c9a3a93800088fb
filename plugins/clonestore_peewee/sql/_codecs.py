"""Fast value conversion between Python values of each kind and driver values.

Peewee converts values through field objects, one Python call chain per
value; here each table gets a row loader and an insert-parameter builder
generated once as straight-line code (the technique attrs and dataclasses use
for ``__init__``), so converting a row costs one function call.
"""

from __future__ import annotations

import functools
import json
import json.decoder
import struct
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import repeat
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import countOf, itemgetter, truediv
from typing import Any, Final, cast

from clonestore.spi import Column

__all__ = [
    "MARIADB_CODECS",
    "POSTGRES_CODECS",
    "SQLITE_CODECS",
    "Codecs",
    "Converter",
    "column_loader",
    "columns_loader",
    "dump_json",
    "float32_blob",
    "make_loader",
    "make_tuple_builder",
]

Converter = Callable[[Any], Any]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_BIG_ENDIAN: Final = sys.byteorder == "big"


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


# The json module's C encoder and scanner, built once: json.dumps with options
# builds a new encoder per call, and json.loads wraps the scanner in Python
# checks; together they cost microseconds per value on a point read.
_c_encoder: Any = c_make_encoder and c_make_encoder(
    None, _refuse, encode_basestring, None, ":", ",", False, False, False
)
_encoder: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_scan_once: Final[Any] = cast(Any, json.decoder.JSONDecoder()).scan_once


def dump_json(value: Any) -> str:
    """Compact JSON text of a (validated) value; floats by ``repr``, so types round-trip."""
    if _c_encoder is None:  # pragma: no cover - Pythons without the C accelerator
        return _encoder.encode(value)
    return "".join(_c_encoder(value, 0))


#: JSON texts of empty containers (default settings, metadata, tags) and their makers.
_EMPTY: Final[dict[str, Callable[[], Any]]] = {"{}": dict, "[]": list}


def load_json(text: str) -> Any:
    """The value of JSON text (as written by :func:`dump_json`, or any JSON)."""
    empty = _EMPTY.get(text)
    if empty is not None:  # the most common values, new objects without parsing
        return empty()
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)  # leading whitespace (text written by hand): the full parser
    if end != len(text):
        return json.loads(text)
    return value


def _datetime_to_micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _micros_to_datetime(value: int) -> datetime:
    return _EPOCH + timedelta(0, 0, value)  # positional: faster than microseconds=


def _decimal_to_micros(value: Decimal) -> int:
    return int(value.scaleb(6))


def _micros_to_decimal(value: int) -> Decimal:
    return Decimal(value).scaleb(-6)


def float32_blob(value: Sequence[float]) -> bytes:
    # float32, little-endian (files move between machines): the values the core keeps
    # (every vector is rounded to float32 before it gets here), exactly, in half the
    # bytes of float64, and the form sqlite-vec reads. A struct of the vector's length
    # packs a list of 384 floats in 8 us, array("f") in 18 us. Bytes are a vector packed
    # already (SQLite packs a row's vector once, for the row and for its vec0 copy).
    if type(value) is bytes:
        return value
    return _float32_struct(len(value)).pack(*value)


@functools.lru_cache(maxsize=64)
def _float32_struct(length: int) -> struct.Struct:
    return struct.Struct(f"<{length}f")


def _blob_to_vector(value: bytes) -> list[float]:
    packed = array("f")
    packed.frombytes(value)
    if _BIG_ENDIAN:  # pragma: no cover
        packed.byteswap()
    return packed.tolist()


def _to_utc(value: datetime) -> datetime:
    # Sessions run with TimeZone=UTC, so this is normally the value itself.
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _numeric_to_int(value: Any) -> int:
    # PostgreSQL's sum(bigint) is numeric.
    return int(value)


def _quantize_money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.000001"))


class Codecs:
    """One engine's converters by kind; None means the driver value is the Python value."""

    def __init__(
        self,
        to_db: Mapping[str, Converter | None],
        from_db: Mapping[str, Converter | None],
        sum_from_db: Mapping[str, Converter | None],
        list_param: Converter | None,
        arrays_as_json: bool,
    ) -> None:
        self.to_db = dict(to_db)
        self.from_db = dict(from_db)
        #: Converts ``sum(column)`` results, by the column's kind.
        self.sum_from_db = dict(sum_from_db)
        #: Converts the list operand of ``contains``/``overlap`` on a list column.
        self.list_param = list_param
        #: SQLite takes a big ``in`` list as one JSON array (read with json_each);
        #: PostgreSQL as one array parameter.
        self.arrays_as_json = arrays_as_json

    def param(self, kind: str) -> Converter | None:
        """Python value -> driver parameter for a column of ``kind``."""
        return self.to_db.get(kind)

    def result(self, kind: str) -> Converter | None:
        """Driver value -> Python value for a column of ``kind``."""
        return self.from_db.get(kind)

    def array_param(self, kind: str) -> Converter:
        """A tuple of values of ``kind`` -> one driver parameter (big ``in`` lists)."""
        convert = self.to_db.get(kind)
        if self.arrays_as_json:
            if convert is None:
                return lambda values: dump_json(list(values))
            return lambda values: dump_json([convert(v) for v in values])
        if convert is None:
            return list
        return lambda values: [convert(v) for v in values]


SQLITE_CODECS: Final = Codecs(
    to_db={
        "datetime": _datetime_to_micros,
        "decimal": _decimal_to_micros,
        "json": dump_json,
        "list": dump_json,
        "vector": float32_blob,
    },
    from_db={
        "bool": bool,
        # A REAL holding an integral value comes back from UPDATE/INSERT ... RETURNING
        # as an int (SQLite skips the column's affinity there): 0.0 would read as 0.
        "float": float,
        "datetime": _micros_to_datetime,
        "decimal": _micros_to_decimal,
        "json": load_json,
        "list": load_json,
        "vector": _blob_to_vector,
    },
    sum_from_db={"decimal": _micros_to_decimal},
    list_param=dump_json,
    arrays_as_json=True,
)


def _pgvector_text(value: Any) -> Any:
    """pgvector's ``vector`` reads as its text (``[1,0.5]``, each item the shortest text of
    its float32): the float32 values. ``real[]`` columns arrive as lists already."""
    if isinstance(value, str):
        return array("f", map(float, value[1:-1].split(","))).tolist()
    return value


POSTGRES_CODECS: Final = Codecs(
    to_db={"json": dump_json},
    from_db={"datetime": _to_utc, "vector": _pgvector_text},
    sum_from_db={"int": _numeric_to_int, "decimal": _quantize_money},
    list_param=list,  # psycopg2 sends a list as an ARRAY (a tuple would be a record)
    arrays_as_json=False,
)


def _to_naive_utc(value: datetime) -> datetime:
    # DATETIME(6) holds UTC wall-clock time (the session's time_zone is +00:00).
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None)


def _naive_utc_to_aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


MARIADB_CODECS: Final = Codecs(
    to_db={
        "datetime": _to_naive_utc,
        "json": dump_json,
        "list": dump_json,
        "vector": float32_blob,
    },
    from_db={
        "bool": bool,
        "datetime": _naive_utc_to_aware,
        "json": load_json,
        "list": load_json,
        "vector": _blob_to_vector,
    },
    # SUM of a BIGINT or DECIMAL column is a DECIMAL.
    sum_from_db={"int": _numeric_to_int, "decimal": _quantize_money},
    list_param=dump_json,
    arrays_as_json=True,
)

#: Converters a loader writes out in place (a function call less per value): the empty
#: JSON texts (default settings, metadata, tags) made without the parser, and
#: SQLite's microseconds as a datetime.
_INLINE: Final[dict[Converter, str]] = {
    load_json: "({{}} if {0} == '{{}}' else [] if {0} == '[]' else {1}({0}))",
    _micros_to_datetime: "(_EPOCH + _timedelta(0, 0, {0}))",
}


def _expression(index: str, convert: Converter | None, nullable: bool, name: str) -> str:
    if convert is None:
        return index
    inline = _INLINE.get(convert)
    if inline is not None:
        expression = inline.format(index, name)
        return f"(None if {index} is None else {expression})" if nullable else expression
    if nullable:
        return f"(None if {index} is None else {name}({index}))"
    return f"{name}({index})"


def make_loader(
    names: Sequence[str],
    converters: Sequence[Converter | None],
    nullable: Sequence[bool],
    shared: Sequence[bool] | None = None,
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """``row tuple -> dict`` for columns ``names``, converting each with its converter.

    ``shared[i]``: column ``i`` (NOT NULL, its converter's results immutable) takes the
    value converted for an earlier such column with the same converter when the driver
    gave both the same value (a row's ``updated_at`` equal to its ``created_at``), so
    each distinct value is converted once.
    """
    namespace: dict[str, Any] = {"_EPOCH": _EPOCH, "_timedelta": timedelta}
    items = []
    earlier: dict[int, int] = {}  # id(converter) -> the first shared column converted by it
    for i, (name, convert, null) in enumerate(zip(names, converters, nullable, strict=True)):
        namespace[f"c{i}"] = convert
        expression = _expression(f"r[{i}]", convert, null, f"c{i}")
        if shared is not None and shared[i] and convert is not None and not null:
            first = earlier.setdefault(id(convert), i)
            if first == i:
                expression = f"(v{i} := {expression})"
            else:
                expression = f"(v{first} if r[{i}] == r[{first}] else {expression})"
        items.append(f"{name!r}: {expression}")
    source = "lambda r: {" + ", ".join(items) + "}"
    loader: Callable[[Sequence[Any]], dict[str, Any]] = eval(source, namespace)
    return loader


def make_tuple_builder(
    sources: Sequence[tuple[Any, Converter | None, bool]],
) -> Callable[[Any], tuple[Any, ...]]:
    """``values -> parameter tuple``.

    Each source is ``(key, converter, nullable)``: the parameter is
    ``converter(values[key])``; a key of ``("const", value)`` is a constant.
    Keys are ints (a list of values) or strings (a row dict).
    """
    namespace: dict[str, Any] = {}
    items = []
    for i, (key, convert, null) in enumerate(sources):
        if isinstance(key, tuple):
            namespace[f"k{i}"] = key[1]
            items.append(f"k{i}")
            continue
        namespace[f"c{i}"] = convert
        items.append(_expression(f"v[{key!r}]", convert, null, f"c{i}"))
    source = "lambda v: (" + "".join(f"{item}, " for item in items) + ")"
    builder: Callable[[Any], tuple[Any, ...]] = eval(source, namespace)
    return builder


def column_loader(columns: Sequence[Column], codecs: Codecs) -> Callable[[Sequence[Any]], Any]:
    """Row loader for a table's columns."""
    return make_loader(
        [c.name for c in columns],
        [codecs.result(c.kind) for c in columns],
        [c.nullable for c in columns],
        [c.kind in _IMMUTABLE_RESULTS for c in columns],
    )


#: SQLite's microseconds below this (2096-10-02) are read exactly by ``fromtimestamp``
#: from ``v / 1e6``: that double is within ``v * 2**-53`` us of the true value, under
#: 0.45 us here, and ``fromtimestamp`` rounds to the nearest microsecond.
_FLOAT_EXACT_MICROS: Final = 4_000_000_000_000_000
_first: Final = itemgetter(0)
_second: Final = itemgetter(1)


def _datetime_column(inline: Callable[[Sequence[Any]], list[Any]]) -> Callable[..., list[Any]]:
    """A NOT NULL column of SQLite's microseconds as datetimes: in C (maps over
    ``fromtimestamp``, about 20% faster) when every value is from 1970 to 2096, else
    ``inline`` (``_EPOCH + timedelta``, exact for every datetime)."""
    from_timestamp = datetime.fromtimestamp

    def convert(values: Sequence[int]) -> list[Any]:
        if values and min(values) >= 0 and max(values) < _FLOAT_EXACT_MICROS:
            return list(map(from_timestamp, map(truediv, values, repeat(1e6)), repeat(UTC)))
        return inline(values)

    return convert


def _json_column(inline: Callable[[Sequence[Any]], list[Any]]) -> Callable[..., list[Any]]:
    """A NOT NULL column of JSON texts as values: parsed by the C scanner in maps (no
    Python call per value) and taken when every text was one whole JSON value; else
    (or when every text is an empty object or list, which ``inline`` makes without
    parsing) ``inline``, which also raises for what is not JSON."""

    def convert(values: Sequence[str]) -> list[Any]:
        count = len(values)
        if countOf(values, "{}") + countOf(values, "[]") == count:
            return inline(values)
        try:
            # A text the scanner does not start on stops the map (StopIteration): short.
            scanned = list(map(_scan_once, values, repeat(0)))
        except ValueError:
            return inline(values)
        if len(scanned) == count and list(map(_second, scanned)) == list(map(len, values)):
            return list(map(_first, scanned))
        return inline(values)

    return convert


#: Column converters faster than value-by-value, by the value converter they stand for.
_COLUMN_CONVERTERS: Final[dict[Converter, Callable[[Callable[..., list[Any]]], Any]]] = {
    _micros_to_datetime: _datetime_column,
    load_json: _json_column,
}


def _column_converter(convert: Converter, nullable: bool) -> Callable[[Sequence[Any]], list[Any]]:
    """``driver values -> Python values`` of one column: a map in C for a converter of
    non-NULL values written as a call, else one comprehension (inline conversions);
    for NOT NULL datetimes and JSON of SQLite, the faster column converters above."""
    if not nullable and convert not in _INLINE:
        return lambda values: list(map(convert, values))
    namespace: dict[str, Any] = {"_EPOCH": _EPOCH, "_timedelta": timedelta, "c": convert}
    source = f"lambda values: [{_expression('v', convert, nullable, 'c')} for v in values]"
    converter: Callable[[Sequence[Any]], list[Any]] = eval(source, namespace)
    faster = _COLUMN_CONVERTERS.get(convert)
    if faster is not None and not nullable:
        column_converter: Callable[[Sequence[Any]], list[Any]] = faster(converter)
        return column_converter
    return converter


def columns_loader(
    columns: Sequence[Column], codecs: Codecs
) -> Callable[[Sequence[Sequence[Any]]], list[Sequence[Any]]]:
    """``driver rows -> one sequence of values per column`` (capability select_columns).

    The rows are turned into columns in C (``zip``); a column whose driver values are
    its Python values is left as it comes, the others are converted a column at a time.
    A column of immutable results (see :func:`make_loader`'s ``shared``) equal to an
    earlier one of the same converter (``updated_at`` of rows never updated) is a copy
    of that one's converted values, converted once.
    """
    count = len(columns)
    steps: list[tuple[int, Callable[[Sequence[Any]], list[Any]], int | None]] = []
    earlier: dict[int, int] = {}  # id(converter) -> the first shared column converted by it
    for i, column in enumerate(columns):
        convert = codecs.result(column.kind)
        if convert is None:
            continue
        first = None
        if column.kind in _IMMUTABLE_RESULTS and not column.nullable:
            first = earlier.setdefault(id(convert), i)
        steps.append((i, _column_converter(convert, column.nullable), first))

    def load(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        if not rows:
            return [[] for _ in range(count)]
        values: list[Sequence[Any]] = list(zip(*rows))  # noqa: B905 (rows of one statement)
        raw = values[:]
        for i, convert, first in steps:
            if first is not None and first != i and raw[i] == raw[first]:
                values[i] = list(values[first])
            else:
                values[i] = convert(values[i])
        return values

    return load


#: Kinds whose Python values are immutable, so two columns of a row may share one.
_IMMUTABLE_RESULTS: Final = frozenset({"datetime", "decimal"})
