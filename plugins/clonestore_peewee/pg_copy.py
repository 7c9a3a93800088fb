"""``COPY ... FROM STDIN`` for large inserts on PostgreSQL (capability ``bulk_copy``).

``insert_many`` of at least ``copy_min_rows`` rows (default 100) sends them in
COPY's text format, in the caller's transaction (a failure, such as a taken
unique value, leaves none of them, as an INSERT would). The rows are the ones
the core validated, and each value is written as the text PostgreSQL reads back
into the same value: the statement changes, never the meaning (the kit's
``test_capability_bulk_copy_keeps_rows_and_atomicity`` holds it to memory://).

Each table gets a row encoder generated once (as :mod:`.codecs` does for
parameters), so encoding a row is one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from clonestore.spi import Column, Row

from .codecs import dump_json

__all__ = ["COPY_CHUNK_ROWS", "copy_chunks", "copy_sql", "row_encoder"]

#: Rows per COPY statement (bounds the text held in memory at once).
COPY_CHUNK_ROWS: Final = 5000

# COPY text format: backslash, and the delimiter and line ends, are escaped.
_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value  # most text: nothing to escape (four scans in C beat one translate)


def _int(value: int) -> str:
    return str(value)


def _float(value: float) -> str:
    return repr(value)  # shortest text that reads back as the same double


def _bool(value: bool) -> str:
    return "t" if value else "f"


def _datetime(value: datetime) -> str:
    return value.isoformat()


def _decimal(value: Decimal) -> str:
    return str(value)


def _json(value: Any) -> str:
    return _text(dump_json(value))


def _array_item(item: str) -> str:
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(value: Sequence[str]) -> str:
    return _text("{" + ",".join(map(_array_item, value)) + "}")


def _vector(value: Sequence[float]) -> str:
    return "{" + ",".join(map(repr, value)) + "}"


_ENCODERS: Final[dict[str, Callable[[Any], str]]] = {
    "id": str,
    "key": _text,
    "text": _text,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "datetime": _datetime,
    "decimal": _decimal,
    "json": _json,
    "list": _list,
    "vector": _vector,
}


def row_encoder(columns: Sequence[Column]) -> Callable[[Row], str]:
    """``row -> one line of COPY text`` for ``columns`` (NULL as ``\\N``)."""
    namespace: dict[str, Any] = {}
    parts = []
    for i, column in enumerate(columns):
        namespace[f"e{i}"] = _ENCODERS[column.kind]
        value = f"r[{column.name!r}]"
        if column.nullable:
            parts.append(f"('\\\\N' if {value} is None else e{i}({value}))")
        else:
            parts.append(f"e{i}({value})")
    source = "lambda r: " + " + '\\t' + ".join(parts) + " + '\\n'"
    encoder: Callable[[Row], str] = eval(source, namespace)
    return encoder


def copy_sql(table: str, columns: Sequence[Column]) -> str:
    """The COPY statement of ``table`` for ``columns``."""
    names = ", ".join(f'"{c.name}"' for c in columns)
    return f'COPY "{table}" ({names}) FROM STDIN'


def copy_chunks(encode: Callable[[Row], str], rows: Sequence[Row]) -> Iterator[str]:
    """The COPY text of ``rows``, :data:`COPY_CHUNK_ROWS` rows at a time."""
    for start in range(0, len(rows), COPY_CHUNK_ROWS):
        yield "".join(map(encode, rows[start : start + COPY_CHUNK_ROWS]))
