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

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import numpy as np

from clonestore.spi import Column, Row

from ..sql._codecs import dump_json

__all__ = [
    "COPY_CHUNK_ROWS",
    "binary_copy_chunks",
    "binary_row_encoder",
    "copied_vectors",
    "copy_chunks",
    "copy_sql",
    "row_encoder",
]

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


def _pgvector(value: Sequence[float]) -> str:
    return "[" + ",".join(map(repr, value)) + "]"


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


def row_encoder(
    columns: Sequence[Column], pgvector: frozenset[str] = frozenset()
) -> Callable[[Row], str]:
    """``row -> one line of COPY text`` for ``columns`` (NULL as ``\\N``); the vector
    columns named in ``pgvector`` are pgvector's ``vector`` (``[1,2]``, not ``{1,2}``)."""
    namespace: dict[str, Any] = {}
    parts = []
    for i, column in enumerate(columns):
        namespace[f"e{i}"] = _pgvector if column.name in pgvector else _ENCODERS[column.kind]
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


# Binary COPY: signature, flags and header extension length, then rows (a field count,
# each field's length and bytes), then -1.
_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
BINARY_HEADER: Final = _SIGNATURE + b"\x00\x00\x00\x00\x00\x00\x00\x00"
BINARY_TRAILER: Final = b"\xff\xff"
_INT16: Final = struct.Struct(">h")
_INT32: Final = struct.Struct(">i")
_FLOAT4_OID: Final = 700
_FLOAT8_OID: Final = 701
_TEXT_OID: Final = 25
_NULL: Final = b"\xff\xff\xff\xff"
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_BIGINT: Final = struct.Struct(">iq")
_DOUBLE: Final = struct.Struct(">id")


def _b_text(value: str) -> bytes:
    data = value.encode()
    return _INT32.pack(len(data)) + data


def _b_int(value: int) -> bytes:
    return _BIGINT.pack(8, value)


def _b_float(value: float) -> bytes:
    return _DOUBLE.pack(8, value)


def _b_bool(value: bool) -> bytes:
    return b"\x00\x00\x00\x01\x01" if value else b"\x00\x00\x00\x01\x00"


def _b_datetime(value: datetime) -> bytes:
    return _BIGINT.pack(8, (value - _PG_EPOCH) // _MICROSECOND)


def _b_decimal(value: Decimal) -> bytes:
    """``numeric``'s binary form: digit count, weight, sign, scale, base-10000 digits."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: the core refuses the others
    text = "".join(map(str, digits))
    scale = max(0, -exponent)
    if exponent > 0:
        text += "0" * exponent
        exponent = 0
    cut = len(text) + exponent
    whole, fraction = (text[:cut], text[cut:]) if cut > 0 else ("", "0" * -cut + text)
    whole = whole.zfill((len(whole) + 3) // 4 * 4)
    fraction = fraction.ljust((len(fraction) + 3) // 4 * 4, "0")
    groups = [int(whole[i : i + 4]) for i in range(0, len(whole), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i : i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight, sign = 0, 0
    body = struct.pack(f">hhHH{len(groups)}h", len(groups), weight, 0x4000 if sign else 0, scale,
                       *groups)  # fmt: skip
    return _INT32.pack(len(body)) + body


def _b_json(value: Any) -> bytes:
    return _b_text(dump_json(value))


def _b_list(value: Sequence[str]) -> bytes:
    if not value:
        body = struct.pack(">iii", 0, 0, _TEXT_OID)
    else:
        items = [item.encode() for item in value]
        body = struct.pack(">iiiii", 1, 0, _TEXT_OID, len(items), 1) + b"".join(
            _INT32.pack(len(item)) + item for item in items
        )
    return _INT32.pack(len(body)) + body


def _float_item(oid: int) -> np.dtype[Any]:
    return np.dtype([("length", ">i4"), ("value", ">f4" if oid == _FLOAT4_OID else ">f8")])


def _b_array(oid: int) -> Callable[[Any], bytes]:
    """A ``real[]`` (``oid`` 700) or ``double precision[]`` (701) vector."""
    item = _float_item(oid)
    size = item.itemsize

    def encode(value: Any) -> bytes:
        count = len(value)
        items = np.empty(count, item)
        items["length"] = size - 4
        items["value"] = value
        body = struct.pack(">iiiii", 1, 0, oid, count, 1) if count else (
            struct.pack(">iii", 0, 0, oid)
        )
        return _INT32.pack(len(body) + items.nbytes) + body + items.tobytes()

    return encode


_FLOAT32S: dict[int, struct.Struct] = {}


def _b_pgvector(value: Any) -> bytes:
    """pgvector's ``vector``: dimension and a zero (int16 each), then float32 items."""
    count = len(value)
    packer = _FLOAT32S.get(count)
    if packer is None:  # one per length: struct packs a list of floats fastest
        packer = _FLOAT32S[count] = struct.Struct(f">ihh{count}f")
    return packer.pack(4 + 4 * count, count, 0, *value)


_BINARY_ENCODERS: Final[dict[str, Callable[[Any], bytes]]] = {
    "id": _b_text,
    "key": _b_text,
    "text": _b_text,
    "int": _b_int,
    "float": _b_float,
    "bool": _b_bool,
    "datetime": _b_datetime,
    "decimal": _b_decimal,
    "json": _b_json,
    "list": _b_list,
}
_VECTOR_ENCODERS: Final[dict[str, Callable[[Any], bytes]]] = {
    "vector": _b_pgvector,
    "real[]": _b_array(_FLOAT4_OID),
    "double precision[]": _b_array(_FLOAT8_OID),
}


def binary_row_encoder(
    columns: Sequence[Column], vector_types: Mapping[str, str]
) -> Callable[[Row], bytes] | None:
    """``row -> one row of binary COPY`` for ``columns``, each vector column stored as
    ``vector_types[name]`` (``vector``, ``real[]`` or ``double precision[]``); None when
    a vector column has another type (then the text format serves)."""
    namespace: dict[str, Any] = {"NULL": _NULL}
    parts = []
    for i, column in enumerate(columns):
        if column.kind == "vector":
            encoder = _VECTOR_ENCODERS.get(vector_types.get(column.name, ""))
            if encoder is None:
                return None
        else:
            encoder = _BINARY_ENCODERS[column.kind]
        namespace[f"e{i}"] = encoder
        value = f"r[{column.name!r}]"
        if column.nullable:
            parts.append(f"(NULL if {value} is None else e{i}({value}))")
        else:
            parts.append(f"e{i}({value})")
    count = _INT16.pack(len(columns))
    namespace["COUNT"] = count
    source = "lambda r: b''.join((COUNT, " + ", ".join(parts) + "))"
    encoder_of_rows: Callable[[Row], bytes] = eval(source, namespace)
    return encoder_of_rows


def binary_copy_chunks(encode: Callable[[Row], bytes], rows: Sequence[Row]) -> Iterator[bytes]:
    """The binary COPY data of ``rows``, :data:`COPY_CHUNK_ROWS` rows a statement."""
    for start in range(0, len(rows), COPY_CHUNK_ROWS):
        chunk = map(encode, rows[start : start + COPY_CHUNK_ROWS])
        yield b"".join((BINARY_HEADER, *chunk, BINARY_TRAILER))


def copied_vectors(data: memoryview) -> tuple[list[str], np.ndarray]:
    """From binary ``COPY`` output of ``(id, array_send(vector))`` rows (a text id, the
    bytea of a ``real[]`` or ``double precision[]`` of one length, none NULL): the ids
    and the vectors as a float64 matrix. When every id has the same length (uuids), the
    rows are one numpy record array, read without a Python loop."""
    if bytes(data[:11]) != _SIGNATURE:
        raise ValueError("not COPY's binary format")
    start = 19 + _INT32.unpack_from(data, 15)[0]
    if _INT16.unpack_from(data, start)[0] == -1:
        return [], np.empty((0, 0))
    id_length = _INT32.unpack_from(data, start + 2)[0]
    array_at = start + 10 + id_length
    array_length = _INT32.unpack_from(data, array_at - 4)[0]
    element = _INT32.unpack_from(data, array_at + 8)[0]
    dimension = _INT32.unpack_from(data, array_at + 12)[0] if array_length > 12 else 0
    item = _float_item(element)
    header = array_length - item.itemsize * dimension
    record = np.dtype([("fields", ">i2"), ("id_length", ">i4"), ("id", f"S{id_length}"),
                       ("array_length", ">i4"), ("header", f"V{header}"),
                       ("items", item, (dimension,))])  # fmt: skip
    count, rest = divmod(len(data) - start - 2, record.itemsize)
    if not rest and record.itemsize == 10 + id_length + array_length:
        rows = np.frombuffer(data, record, count, start)
        if (
            (rows["fields"] == 2).all()
            and (rows["id_length"] == id_length).all()
            and (rows["array_length"] == array_length).all()
        ):
            ids = [id.decode() for id in rows["id"].tolist()]
            return ids, rows["items"]["value"].astype(np.float64)
    ids, sent = _copied_ids_and_bytes(data, start)
    return ids, np.frombuffer(sent, np.dtype([("header", "V20"), ("items", item, (dimension,))]),
                              len(ids))["items"]["value"].astype(np.float64)  # fmt: skip


def _copied_ids_and_bytes(data: memoryview, pos: int) -> tuple[list[str], bytes]:
    """The ids, and the byteas one after the other, of COPY's rows from ``pos`` on."""
    ids: list[str] = []
    parts: list[memoryview] = []
    unpack16, unpack32 = _INT16.unpack_from, _INT32.unpack_from
    while unpack16(data, pos)[0] != -1:
        pos += 2
        length = unpack32(data, pos)[0]
        pos += 4
        ids.append(str(data[pos : pos + length], "utf-8"))
        pos += length
        length = unpack32(data, pos)[0]
        pos += 4
        parts.append(data[pos : pos + length])
        pos += length
    return ids, b"".join(parts)
