"""How a record becomes a table: columns, kinds, unique constraints, indexes.

A :class:`TableSpec` is the only description of a table a backend ever sees.
Specs are derived from attrs record classes (:func:`table_spec`) or written by
hand for plugin tables. Every value crosses the SPI as a plain Python value of
its column's *kind*; :func:`check` is the one validator all input goes through,
so every backend receives exactly the same, already valid, values.

Kinds and their Python values:

========  ==========================================================
id        ``str`` of 1 to 128 characters without control characters or lone
          surrogates: a UUID, cuid, ULID, ``"1"``... (``uuid.UUID`` accepted,
          as its canonical lower-case string); compared code point for code point
key       ``str``, an opaque identifier (plugin tables), no NUL
text      ``str`` without NUL or lone surrogates
int       ``int`` in signed 64 bits (``bool`` refused)
float     finite ``float`` (``int`` accepted and widened)
bool      ``bool``
datetime  timezone-aware ``datetime``, normalised to UTC
decimal   finite ``Decimal`` with at most 6 decimal places (money)
json      JSON value: dict/list/str/int/float/bool/None, finite, no NUL
list      ``list[str]`` (order and duplicates kept)
vector    ``list[float]`` of finite float32 values (see :func:`float32_vector`)
========  ==========================================================
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, SupportsFloat, TypeAlias, TypeVar, cast, dataclass_transform

import attrs
import numpy as np

from clonestore.errors import ValidationError
from clonestore.vectors import SAFE_MIN

__all__ = [
    "ID_MAX_LENGTH",
    "KINDS",
    "MUTABLE_KINDS",
    "ORDERABLE",
    "AppendOnly",
    "Column",
    "ForeignKey",
    "Index",
    "TableSpec",
    "Unique",
    "VectorLike",
    "check",
    "checker",
    "column",
    "float32_vector",
    "json_object",
    "record",
    "record_columns",
    "removal_order",
    "table_spec",
]

KINDS: Final = frozenset(
    {"id", "key", "text", "int", "float", "bool", "datetime", "decimal", "json", "list", "vector"}
)
#: Kinds that can be compared and ordered (filters lt/gt, order_by, keyset pages).
ORDERABLE: Final = frozenset({"id", "key", "text", "int", "float", "bool", "datetime", "decimal"})
#: Kinds whose values are mutable (lists and dicts): rows share them only through copies.
MUTABLE_KINDS: Final = frozenset({"json", "list", "vector"})
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MONEY_PLACES: Final = 6
MONEY_QUANTUM: Final = Decimal(1).scaleb(-MONEY_PLACES)
MONEY_LIMIT: Final = Decimal(10) ** 12  # |value| < 10^12 fits int64 micro-units
DEFAULT_TEXT_LENGTH: Final = 10_000
DEFAULT_LIST_ITEMS: Final = 1_000
JSON_MAX_DEPTH: Final = 32
JSON_MAX_CHARS: Final = 1_000_000

#: Who may set a column: ``"yes"`` (create and update), ``"create"`` (only at
#: creation), ``"no"`` (only the core and domain operations).
Settable = str


@attrs.frozen(kw_only=True)
class Column:
    """One column of a table and the rules its values obey."""

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    nullable: bool = False
    max_length: int | None = None
    """Text: maximum characters. List/vector: maximum items."""
    min_length: int = 0
    choices: tuple[str, ...] | None = None
    minimum: int | float | Decimal | None = None
    maximum: int | float | Decimal | None = None
    email: bool = False
    casefold: bool = False
    """Equality and uniqueness go through the ``<name>_key`` column holding ``casefold()``."""
    derived_from: str | None = None
    """Set for a ``<name>_key`` column: computed by the core, never by the caller."""
    settable: Settable = "yes"
    default: Any = None
    default_factory: Callable[[], Any] | None = None
    validator: Callable[[Any], str | None] | None = None
    """Further rules on a (non-null, already checked) value: returns what is wrong, or None."""

    @property
    def key_name(self) -> str:
        """Name of the casefolded companion column."""
        return f"{self.name}_key"

    def default_value(self) -> Any:
        return self.default_factory() if self.default_factory is not None else self.default


@attrs.frozen
class Unique:
    """Values of ``columns`` are unique among the rows matching ``when``.

    On tables with soft delete the constraint holds among live rows only.
    ``NULL`` values never conflict, as in SQL.
    """

    columns: tuple[str, ...]
    when: tuple[tuple[str, Any], ...] = ()

    def name(self, table: str) -> str:
        suffix = "_".join(c for c, _ in self.when)
        return f"uq_{table}_{'_'.join(self.columns)}" + (f"_{suffix}" if suffix else "")


@attrs.frozen
class Index:
    """A plain (non-unique) index on ``columns``.

    ``live``: on a table with soft delete, the index covers live rows only
    (``WHERE deleted_at IS NULL``), in the order the repositories read them;
    a backend without partial indexes may index every row instead.
    """

    columns: tuple[str, ...]
    live: bool = False

    def name(self, table: str) -> str:
        return f"ix_{table}_{'_'.join(self.columns)}" + ("_live" if self.live else "")


#: What a foreign key does when a referenced row is removed: ``"restrict"`` refuses the
#: removal while rows point at it (the core removes them first, through the repositories,
#: so hooks and the audit see each); ``"set_null"`` sets the referencing columns to NULL
#: (the original schema's ``onDelete: SetNull``; the core does it first too).
ON_DELETE: Final = ("restrict", "set_null")


@attrs.frozen
class ForeignKey:
    """Rows' ``columns`` point at the row of table ``references`` whose ``referenced``
    columns hold the same values (the primary key ``id`` unless said); a row whose
    columns are all set must point at an existing row, live or soft-deleted.

    A backend refuses any write that would leave a row pointing at nothing (an insert,
    an update, or the removal of a referenced row under ``"restrict"``) with
    :class:`~clonestore.ForeignKeyViolation`; under ``"set_null"`` removing the
    referenced row sets ``columns`` to NULL instead. Referenced columns never change.
    """

    columns: tuple[str, ...]
    references: str
    referenced: tuple[str, ...] = ("id",)
    on_delete: str = attrs.field(default="restrict", validator=attrs.validators.in_(ON_DELETE))

    def __attrs_post_init__(self) -> None:
        if not self.columns or len(self.columns) != len(self.referenced):
            raise ValueError(f"{self}: as many columns as referenced columns, at least one")

    def name(self, table: str) -> str:
        return f"fk_{table}_{'_'.join(self.columns)}"


@attrs.frozen(kw_only=True)
class AppendOnly:
    """Table option ``append_only``: rows are inserted, never changed or removed,
    with two escapes that cannot rewrite history.

    * An update may set ``erasable`` columns to NULL (erasing personal data) and
      set ``erased_at``; every other column must stay as it was.
    * Rows leave only through the backend's ``purge(table, up_to)``, which
      removes the rows whose ``purge_by`` value is at most ``up_to`` (the oldest).

    Anything else (an UPDATE of another column, a DELETE, a TRUNCATE, an upsert
    that changes a row) is refused with :class:`~clonestore.BackendError`. See
    :func:`clonestore.spi_reference.append_only_allows` for the reference meaning.
    """

    erasable: tuple[str, ...] = ()
    erased_at: str | None = None
    purge_by: str | None = None


@attrs.frozen(kw_only=True)
class TableSpec:
    """A table: its columns (``id`` first), constraints, indexes and options.

    Options, each implemented by backends that declare the capability of the
    same name (see ``docs/backend-guide.md``):

    * ``ephemeral``: the rows may be lost in a crash (counters, caches), so the
      backend may skip durability for speed. A hint: a backend without the
      capability keeps the table durable, with the same meaning otherwise.
    * ``append_only``: an :class:`AppendOnly` guard. A guarantee: a store whose
      backend does not declare ``append_only`` refuses to open with such a table.
    * ``partition_by``: the time column (kind ``datetime``, or ``int`` counting
      microseconds since the epoch) by which a backend declaring
      ``time_partitions`` may keep the table in partitions by time (PostgreSQL's
      ``layout=partitioned``: by month). A hint: the meaning is the same either way.
    """

    name: str
    columns: tuple[Column, ...]
    unique: tuple[Unique, ...] = ()
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    ephemeral: bool = False
    append_only: AppendOnly | None = None
    partition_by: str | None = None
    record: type | None = attrs.field(default=None, eq=False)
    by_name: Mapping[str, Column] = attrs.field(init=False, eq=False, repr=False)
    #: The columns whose values may be lists or dicts (kinds in :data:`MUTABLE_KINDS`).
    mutable_columns: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"duplicate column in table {self.name}")
        if "id" not in by_name:
            raise ValueError(f"table {self.name} needs an 'id' column")
        for constraint in (*self.unique, *self.indexes):
            for name in cast(Unique | Index, constraint).columns:
                if name not in by_name:
                    raise ValueError(f"{self.name}: unknown column {name!r} in {constraint}")
        for fk in self.foreign_keys:
            for name in fk.columns:
                if name not in by_name:
                    raise ValueError(f"{self.name}: unknown column {name!r} in {fk}")
                if fk.on_delete == "set_null" and not by_name[name].nullable:
                    raise ValueError(f"{self.name}: {fk} sets {name!r} to NULL: not nullable")
        for index in self.indexes:
            if index.live and "deleted_at" not in by_name:
                raise ValueError(f"{self.name}: a live-rows index needs a deleted_at column")
        if self.append_only is not None:
            _check_append_only(self.name, self.append_only, by_name)
        if self.partition_by is not None and (
            self.partition_by not in by_name or by_name[self.partition_by].kind not in
            ("datetime", "int")
        ):  # fmt: skip
            raise ValueError(
                f"{self.name}: partition_by names a datetime or int column, not "
                f"{self.partition_by!r}"
            )
        object.__setattr__(self, "by_name", by_name)
        mutable = tuple(c.name for c in self.columns if c.kind in MUTABLE_KINDS)
        object.__setattr__(self, "mutable_columns", mutable)

    @property
    def soft_delete(self) -> bool:
        """Rows are soft-deleted (``deleted_at`` set) rather than removed."""
        return "deleted_at" in self.by_name

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The column called ``name``; :class:`ValidationError` if there is none."""
        try:
            return self.by_name[name]
        except KeyError:
            raise ValidationError(f"unknown field for {self.name}", field=name) from None


def removal_order(specs: Iterable[TableSpec]) -> list[TableSpec]:
    """``specs`` ordered so that each table comes before the tables it references
    (:class:`ForeignKey`): the order in which to empty them, referencing rows first.
    Otherwise in the given order."""
    given = list(specs)
    by_name = {spec.name: spec for spec in given}
    out: list[TableSpec] = []
    done: set[str] = set()

    def visit(spec: TableSpec, path: tuple[str, ...]) -> None:
        if spec.name in done or spec.name in path:
            return
        # Tables referencing this one go first.
        for other in given:
            if any(fk.references == spec.name for fk in other.foreign_keys) and other is not spec:
                visit(other, (*path, spec.name))
        if spec.name not in done:
            done.add(spec.name)
            out.append(spec)

    for spec in given:
        visit(by_name[spec.name], ())
    return out


def _check_append_only(table: str, option: AppendOnly, by_name: Mapping[str, Column]) -> None:
    for name in option.erasable:
        if name not in by_name or not by_name[name].nullable:
            raise ValueError(f"{table}: append_only.erasable names {name!r}, not a nullable column")
    if option.erased_at is not None and (
        option.erased_at not in by_name or by_name[option.erased_at].kind != "datetime"
    ):
        raise ValueError(f"{table}: append_only.erased_at must name a datetime column")
    if option.purge_by is not None and (
        option.purge_by not in by_name or by_name[option.purge_by].kind != "int"
    ):
        raise ValueError(f"{table}: append_only.purge_by must name an int column")


# --------------------------------------------------------------------------- validation

#: The longest id (in characters) a caller may choose.
ID_MAX_LENGTH: Final = 128
#: An id: 1 to 128 characters, none of them a control character (Unicode category Cc).
_ID_RE: Final = re.compile(rf"[^\x00-\x1f\x7f-\x9f]{{1,{ID_MAX_LENGTH}}}")
_EMAIL_RE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


#: Ids that passed the check lately. An id is checked on every call that names one (get,
#: update, add_turn...), mostly the same few ids again and again; a set lookup costs a
#: fraction of the regex (a str caches its hash). Bounded: cleared when full. Only valid
#: ids enter, and the check is a pure function of the string, so a hit means what a
#: match means.
_VALID_IDS: set[str] = set()
_VALID_IDS_MAX: Final = 65_536


def _remember_id(value: str) -> None:
    if len(_VALID_IDS) >= _VALID_IDS_MAX:
        _VALID_IDS.clear()
    _VALID_IDS.add(value)


def _fail(col: Column, message: str) -> ValidationError:
    return ValidationError(message, field=col.name)


def _check_text(col: Column, value: Any, max_length: int | None) -> str:
    if type(value) is not str:
        if not isinstance(value, str):
            raise _fail(col, f"expected text, got {type(value).__name__}")
        value = str(value)
    if "\x00" in value:
        raise _fail(col, "text may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(col, "text may not contain lone surrogates") from None
    limit = DEFAULT_TEXT_LENGTH if max_length is None else max_length
    if len(value) > limit:
        raise _fail(col, f"text longer than {limit} characters")
    if len(value) < col.min_length:
        raise _fail(col, f"text shorter than {col.min_length} characters")
    return cast(str, value)


def _check_range(col: Column, value: Any) -> None:
    if col.minimum is not None and value < col.minimum:
        raise _fail(col, f"must be >= {col.minimum}")
    if col.maximum is not None and value > col.maximum:
        raise _fail(col, f"must be <= {col.maximum}")


def _check_json(col: Column, value: Any, depth: int) -> Any:
    if depth > JSON_MAX_DEPTH:
        raise _fail(col, f"JSON nested deeper than {JSON_MAX_DEPTH} levels")
    if value is None or type(value) is bool or type(value) is str:
        if type(value) is str:
            _check_text(col, value, JSON_MAX_CHARS)
        return value
    if type(value) is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise _fail(col, "JSON integer outside signed 64 bits")
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise _fail(col, "JSON numbers must be finite (no NaN or Infinity)")
        return value
    if type(value) is list:
        return [_check_json(col, item, depth + 1) for item in value]
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _fail(col, "JSON object keys must be strings")
            _check_text(col, key, JSON_MAX_CHARS)
            out[key] = _check_json(col, item, depth + 1)
        return out
    raise _fail(col, f"{type(value).__name__} is not a JSON value")


@functools.cache
def _item_column(col: Column) -> Column:
    """The rules for one item of a list column (errors still name the list)."""
    return attrs.evolve(col, kind="text", max_length=None, min_length=0)


def check(col: Column, value: Any) -> Any:
    """Validate ``value`` for ``col`` and return its normalised form.

    Raises :class:`ValidationError` naming the field. ``None`` is accepted
    only for nullable columns.
    """
    checked = _check_kind(col, value)
    if col.validator is not None and checked is not None:
        problem = col.validator(checked)
        if problem is not None:
            raise _fail(col, problem)
    return checked


def checker(col: Column) -> Callable[[Any], Any]:
    """``check(col, value)`` as a function of ``value`` alone, its branch chosen once:
    what code checking the same column on every call keeps (an id's check is then a
    set lookup for an id seen lately, without the call chain)."""
    if col.kind == "id" and col.validator is None:
        valid = _VALID_IDS

        def check_id(value: Any) -> Any:
            if type(value) is str and value in valid:
                return value
            return _check_kind(col, value)

        return check_id
    if (
        col.kind == "datetime"
        and col.validator is None
        and col.minimum is None
        and col.maximum is None
    ):

        def check_datetime(value: Any) -> Any:
            # A UTC datetime is its own normal form (astimezone(UTC) returns it as is).
            if type(value) is datetime and value.tzinfo is UTC:
                return value
            return _check_kind(col, value)

        return check_datetime
    return functools.partial(check, col)


def json_object(value: Any) -> str | None:
    """Must be a JSON object (a ``dict``). Use it as a :attr:`Column.validator`."""
    if type(value) is not dict:
        return f"must be a JSON object (a dict), got {type(value).__name__}"
    return None


def _check_kind(col: Column, value: Any) -> Any:
    if value is None:
        if col.nullable:
            return None
        raise _fail(col, "may not be null")
    kind = col.kind
    if kind == "text" or kind == "key":
        value = _check_text(col, value, col.max_length)
        if col.choices is not None and value not in col.choices:
            raise _fail(col, f"must be one of {', '.join(col.choices)}; got {value!r}")
        if col.email and (not _EMAIL_RE.fullmatch(value) or len(value) > 254):
            raise _fail(col, f"not a valid email address: {value!r}")
        return value
    if kind == "id":
        if type(value) is str and value in _VALID_IDS:
            return value
        if isinstance(value, uuid.UUID):
            return str(value)
        if type(value) is not str or not _ID_RE.fullmatch(value):
            raise _fail(
                col,
                f"expected an id (1 to {ID_MAX_LENGTH} characters, no control characters), "
                f"got {value!r}",
            )
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _fail(col, "an id may not contain lone surrogates") from None
        _remember_id(value)
        return value
    if kind == "int":
        if type(value) is not int:
            raise _fail(col, f"expected an integer, got {type(value).__name__}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise _fail(col, "integer outside signed 64 bits")
        _check_range(col, value)
        return value
    if kind == "float":
        if type(value) is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise _fail(col, "number outside signed 64 bits")
            value = float(value)
        elif type(value) is not float:
            raise _fail(col, f"expected a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise _fail(col, "must be finite (no NaN or Infinity)")
        _check_range(col, value)
        return value + 0.0  # -0.0 -> 0.0: SQLite keeps no sign on a zero REAL
    if kind == "bool":
        if type(value) is not bool:
            raise _fail(col, f"expected a boolean, got {type(value).__name__}")
        return value
    if kind == "datetime":
        if not isinstance(value, datetime):
            raise _fail(col, f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise _fail(col, "naive datetimes are refused; pass a timezone-aware datetime")
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise _fail(col, "datetime out of range once converted to UTC") from None
        if type(value) is not datetime:
            value = datetime(
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
                tzinfo=UTC,
            )
        _check_range(col, value)
        return value
    if kind == "decimal":
        if type(value) is int and not isinstance(value, bool):
            value = Decimal(value)
        if not isinstance(value, Decimal):
            raise _fail(col, f"expected a Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise _fail(col, "must be a finite Decimal")
        if abs(value) >= MONEY_LIMIT:
            raise _fail(col, f"must be smaller than {MONEY_LIMIT} in magnitude")
        try:
            exact = value.quantize(MONEY_QUANTUM)
        except InvalidOperation:
            raise _fail(col, "not representable exactly") from None
        if exact != value:
            raise _fail(col, f"at most {MONEY_PLACES} decimal places are stored exactly")
        _check_range(col, exact)
        # -0 -> 0: integer micro-units and NUMERIC have no negative zero.
        return exact.copy_abs() if exact.is_zero() else exact
    if kind == "json":
        return _check_json(col, value, 0)
    if kind == "vector":
        return float32_vector(col, value).tolist()
    if kind == "list":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _fail(col, f"expected a list, got {type(value).__name__}")
        _check_count(col, len(value))
        item_col = _item_column(col)
        return [_check_text(item_col, item, None) for item in value]
    raise AssertionError(kind)  # pragma: no cover - KINDS is closed


def _check_count(col: Column, count: int) -> None:
    limit = DEFAULT_LIST_ITEMS if col.max_length is None else col.max_length
    if count > limit:
        raise _fail(col, f"more than {limit} items")
    if count < col.min_length:
        raise _fail(col, f"fewer than {col.min_length} items")


#: What a vector column accepts (see :func:`float32_vector`): a sequence of numbers (a list,
#: a tuple, ``array('f')``, a ``memoryview``) or a numpy array.
VectorLike: TypeAlias = Sequence[SupportsFloat] | np.ndarray[Any, Any]

_NUMBER_KINDS: Final = frozenset("fiu")
_ZERO32: Final = np.float32(0.0)
_FLUSH_BELOW: Final = np.float32(SAFE_MIN)
_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
_FLOAT_ITEMS: Final = (float, int, np.floating, np.integer)
_BOOLS: Final = frozenset({bool, np.bool_})


def float32_vector(col: Column, value: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The items of vector ``value`` for ``col``, rounded to float32 (a new array).

    Accepted: a list or tuple of numbers (``int``, ``float``, numpy scalars; not
    ``bool``), a one-dimensional numpy array of a float or integer dtype, or any
    buffer of numbers (``array('f')``, ``array('d')``, ``memoryview``). Items are
    rounded to the nearest float32 (as pgvector, sqlite-vec and embedding models
    store them), items below ``2**-50`` in magnitude (``clonestore.vectors.SAFE_MIN``)
    and ``-0.0`` become ``0.0`` (so every engine scores the vector: see
    :func:`clonestore.vectors.float32_values`), and every item must then be finite:
    NaN, infinities and values beyond float32's range (about ``3.4e38``) are
    refused. No Python loop over the items: a list is converted by numpy in one
    call (its items' types are scanned, in C, only when it holds a 0 or a 1: a bool
    is refused), then a few whole-array operations check and round it
    (``bench/bench_vector_check.py``).
    """
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):  # ragged or nested
            raise _fail(col, "vector items must be finite numbers") from None
        # A bool (which numpy reads as 1 or 0, as an int would be) is refused, as in float
        # fields: only a list holding a 0 or a 1 can hold one, so only such a list is
        # scanned for its items' types (in C).
        if (
            array.dtype.kind in _NUMBER_KINDS
            and ((array == 0) | (array == 1)).any()
            and not _BOOLS.isdisjoint(map(type, value))
        ):
            raise _fail(col, "vector items must be finite numbers")
    elif isinstance(value, (str, bytes, bytearray)) or not _is_buffer(value):
        raise _fail(col, f"expected a list or array of numbers, got {type(value).__name__}")
    else:
        array = np.asarray(memoryview(value))
    if array.ndim != 1 or array.dtype.kind not in _NUMBER_KINDS:
        if array.ndim == 1 and array.dtype.kind == "O" and _all_numbers(array):
            array = array.astype(np.float64)  # e.g. ints beyond 64 bits among floats
        else:
            raise _fail(col, "vector items must be finite numbers")
    _check_count(col, len(array))
    wide = array.dtype.itemsize > 4 and array.dtype.kind == "f"
    if wide and not np.abs(array).max(initial=0.0) <= _FLOAT32_MAX:
        # Wider floats: refused before the cast when beyond float32's range (or NaN, which
        # max returns), so the cast never overflows (numpy would warn).
        raise _fail(col, "vector items must be finite numbers within float32's range")
    rounded = array.astype(np.float32)
    # Tiny items (and -0.0, as for float columns) become 0.0; NaN compares False.
    rounded[np.abs(rounded) < _FLUSH_BELOW] = _ZERO32
    # Narrower floats may hold NaN or infinities (wider ones were checked above, integers
    # are finite as float32).
    if array.dtype.kind == "f" and not wide and not np.isfinite(rounded).all():
        raise _fail(col, "vector items must be finite numbers within float32's range")
    return rounded


def _is_buffer(value: Any) -> bool:
    try:
        memoryview(value)
    except TypeError:
        return False
    return True


def _all_numbers(array: np.ndarray[Any, Any]) -> bool:
    return all(isinstance(x, _FLOAT_ITEMS) and type(x) is not bool for x in array.tolist())


# --------------------------------------------------------------------------- records -> specs

_META: Final = "clonestore"
_T = TypeVar("_T", bound=type)


def column(kind: str, **options: Any) -> Any:
    """Declare a field of a record class and the rules of its column.

    ``options`` are :class:`Column` attributes. Use inside a class decorated
    with :func:`record`, which names the column after the field and makes the
    field validate (and normalise) its value at construction: a record that
    exists is valid.
    """
    spec = Column(name="?", kind=kind, **options)
    kwargs: dict[str, Any] = {"metadata": {_META: spec}}
    if spec.default_factory is not None:
        kwargs["factory"] = spec.default_factory
    elif "default" in options or spec.nullable:
        kwargs["default"] = spec.default
    return attrs.field(**kwargs)


def _attach_columns(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    out = []
    for f in fields:
        spec = f.metadata.get(_META)
        if spec is None:
            out.append(f)
            continue
        named = attrs.evolve(spec, name=f.name)

        convert = checker(named)  # its branch chosen once, not on every record built
        if named.kind in ("list", "vector"):
            convert = _as_tuple(convert)

        out.append(f.evolve(converter=convert, metadata={_META: named}))
    return out


def _as_tuple(check_value: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``check_value`` giving a tuple: records hold tuples, so a frozen record is
    immutable all the way down."""

    def convert(value: Any) -> Any:
        checked = check_value(value)
        return None if checked is None else tuple(checked)

    return convert


@dataclass_transform(
    kw_only_default=True, frozen_default=True, field_specifiers=(column, attrs.field)
)
def record(cls: _T) -> _T:
    """Class decorator for clonestore records: frozen, keyword-only, validated attrs classes.

    Type checkers see records as frozen, keyword-only dataclasses
    (``dataclass_transform``): their fields, ``__init__`` and immutability.
    A field declared with :func:`column` has a default when it is given
    ``default`` or ``default_factory`` (say ``default=None`` for a nullable field).
    """
    return attrs.frozen(kw_only=True, field_transformer=_attach_columns)(cls)


def record_columns(record_cls: type) -> tuple[Column, ...]:
    """The columns of a record class, in field order, with casefold companions."""
    out: list[Column] = []
    for f in attrs.fields(record_cls):
        col = f.metadata.get(_META)
        if col is None:
            continue
        out.append(col)
        if col.casefold:
            out.append(
                Column(
                    name=col.key_name,
                    kind="text",
                    nullable=col.nullable,
                    max_length=col.max_length,
                    derived_from=col.name,
                    settable="no",
                )
            )
    return tuple(out)


def table_spec(
    record_cls: type,
    name: str,
    *,
    unique: Iterable[Unique] = (),
    indexes: Iterable[Index] = (),
    foreign_keys: Iterable[ForeignKey] = (),
    partition_by: str | None = None,
) -> TableSpec:
    """Derive the table spec of a record class."""
    return TableSpec(
        name=name,
        columns=record_columns(record_cls),
        unique=tuple(unique),
        indexes=tuple(indexes),
        foreign_keys=tuple(foreign_keys),
        partition_by=partition_by,
        record=record_cls,
    )
