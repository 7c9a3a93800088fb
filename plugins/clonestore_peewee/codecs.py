"""Fast value conversion between Python values of each kind and driver values.

Peewee converts values through field objects, one Python call chain per
value; here each table gets a row loader and an insert-parameter builder
generated once as straight-line code (the technique attrs and dataclasses use
for ``__init__``), so converting a row costs one function call.
"""

from __future__ import annotations

import json
import json.decoder
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, Final, cast

from clonestore.spi import Column

__all__ = [
    "MARIADB_CODECS",
    "POSTGRES_CODECS",
    "SQLITE_CODECS",
    "Codecs",
    "Converter",
    "column_loader",
    "dump_json",
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


def load_json(text: str) -> Any:
    """The value of JSON text (as written by :func:`dump_json`, or any JSON)."""
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


def _vector_to_blob(value: Sequence[float]) -> bytes:
    packed = array("d", value)
    if _BIG_ENDIAN:  # pragma: no cover - stored little-endian so files move between machines
        packed.byteswap()
    return packed.tobytes()


def _blob_to_vector(value: bytes) -> list[float]:
    packed = array("d")
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
        "vector": _vector_to_blob,
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

POSTGRES_CODECS: Final = Codecs(
    to_db={"json": dump_json},
    from_db={"datetime": _to_utc},
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
        "vector": _vector_to_blob,
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

def _expression(index: str, convert: Converter | None, nullable: bool, name: str) -> str:
    if convert is None:
        return index
    if nullable:
        return f"(None if {index} is None else {name}({index}))"
    return f"{name}({index})"


def make_loader(
    names: Sequence[str], converters: Sequence[Converter | None], nullable: Sequence[bool]
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """``row tuple -> dict`` for columns ``names``, converting each with its converter."""
    namespace: dict[str, Any] = {}
    items = []
    for i, (name, convert, null) in enumerate(zip(names, converters, nullable, strict=True)):
        namespace[f"c{i}"] = convert
        items.append(f"{name!r}: {_expression(f'r[{i}]', convert, null, f'c{i}')}")
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
    )
