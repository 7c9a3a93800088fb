"""Records to rows and back, for one table (private to the repositories).

A record is what callers see (attrs, validated when built); a row is what
the backend stores: the record's fields as plain values (lists for tuples),
derived columns (``email_key``) and columns no record field names. The
repository (:mod:`clonestore.repositories.base`) decides what to read and
write; a :class:`RecordMapping` only converts.
"""

from __future__ import annotations

import collections
import itertools
import types
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Generic, TypeVar, cast

import attrs

from clonestore.errors import ValidationError
from clonestore.schema import Column, TableSpec, checker
from clonestore.spi import Increment, Row

__all__ = ["RecordMapping"]

R = TypeVar("R")


#: The hidden column of rows a user's cascading soft delete removed (see records).
CASCADE: Final = "deleted_by_cascade"
#: Fields a caller may give to ``create`` that the core fills in otherwise.
_GENERATED: Final = frozenset({"id"})


def _defaults_to_now(col: Column) -> bool:
    return col.kind == "datetime" and col.settable == "create" and not col.nullable


class RecordMapping(Generic[R]):
    """How the records of ``spec.record`` map to and from ``spec``'s rows."""

    def __init__(self, spec: TableSpec) -> None:
        if spec.record is None:
            raise TypeError(f"table {spec.name} has no record class")
        self.spec = spec
        self.record: type[R] = spec.record
        attributes = attrs.fields(cast(Any, self.record))
        #: The record's fields, in declaration order.
        self.fields = tuple(f.name for f in attributes)
        #: ``id`` if it is a valid id, else :class:`ValidationError`.
        self.check_id: Callable[[Any], str] = checker(spec.column("id"))
        # What update() may change, each with its check (``settable="yes"``, not derived).
        self._changeable = {
            c.name: checker(c)
            for c in spec.columns
            if c.settable == "yes" and c.derived_from is None
        }
        self._derived = tuple(c for c in spec.columns if c.derived_from is not None)
        self._hidden = tuple(
            c.name for c in spec.columns if c.name not in self.fields and c.derived_from is None
        )
        self._list_fields = tuple(
            c.name for c in spec.columns if c.kind in ("list", "vector") and c.name in self.fields
        )
        self._now_fields = tuple(n for n in self.fields if _defaults_to_now(spec.by_name[n]))
        # The store may keep shorter vectors than the record class takes (its backend's
        # limit, see Store.max_vector_dimensions): checked again once a record is built.
        self._vector_limits = tuple(
            (c.name, c.max_length)
            for c in spec.columns
            if c.kind == "vector" and c.max_length is not None and c.name in self.fields
        )
        # What an upsert replaces: every column a caller sets (and the ones derived from
        # them), not the id, the version or what only domain operations change.
        self._replaced = tuple(
            c.name
            for c in spec.columns
            if c.name not in ("id", "version")
            and (c.settable != "no" or c.derived_from is not None)
        )
        self.soft_delete = spec.soft_delete and "deleted_at" in self.fields
        # What a caller may give to create a record (the rest is set by clonestore).
        self._givable = frozenset(
            c.name
            for c in spec.columns
            if c.settable != "no" and c.derived_from is None and c.name in self.fields
        )
        #: Fields a caller must give to create a record.
        self.required = frozenset(
            f.name
            for f in attributes
            if f.default is attrs.NOTHING
            and spec.by_name[f.name].settable != "no"
            and f.name not in self._now_fields
            and f.name not in _GENERATED
        )
        #: A stored row as a record, without re-validating it (rows were validated on the
        #: way in, so reads skip the field converters).
        self.load: Callable[[Mapping[str, Any]], R] = self._make_loader()
        #: Records from stored values a column each (``columns[i]`` holds field
        #: ``fields[i]``'s values, row by row; further columns are ignored): the first
        #: ``count`` rows', built as :attr:`load` builds them, a field at a time.
        self.load_columns: Callable[[Sequence[Sequence[Any]], int], list[R]] = (
            self._make_columns_loader()
        )

    def _make_loader(self) -> Callable[[Mapping[str, Any]], R]:
        # Like attrs itself, the function is generated once per record class. A field of a
        # slotted record (attrs' default) is set through its slot's descriptor: half the
        # cost of object.__setattr__, which first checks the class's own __setattr__.
        lines = ["def load(row):", "    rec = new(cls)"]
        namespace: dict[str, Any] = {"new": object.__new__, "cls": self.record}
        for i, name in enumerate(self.fields):
            value = f"row[{name!r}]"
            if name in self._list_fields:
                value = f"(None if {value} is None else tuple({value}))"
            slot = _slot(self.record, name)
            if slot is not None:
                namespace[f"set{i}"] = slot.__set__
                lines.append(f"    set{i}(rec, {value})")
            else:
                namespace[f"name{i}"] = name
                namespace["setattr"] = object.__setattr__
                lines.append(f"    setattr(rec, name{i}, {value})")
        lines.append("    return rec")
        exec("\n".join(lines), namespace)  # the source is built from field names only
        loader: Callable[[Mapping[str, Any]], R] = namespace["load"]
        return loader

    def _make_columns_loader(self) -> Callable[[Sequence[Sequence[Any]], int], list[R]]:
        # Each field is set on every record by one map() that a deque of no length
        # drains: the slot setters run from C, with no Python frame per row (a page of 50
        # users: 10 maps instead of 50 calls of load()).
        lines = [
            "def load_columns(columns, count):",
            "    recs = list(map(new, repeat(cls, count)))",
        ]
        namespace: dict[str, Any] = {
            "new": object.__new__,
            "cls": self.record,
            "repeat": itertools.repeat,
            "drain": collections.deque(maxlen=0).extend,
            "tuple_or_none": _tuple_or_none,
        }
        for i, name in enumerate(self.fields):
            values = f"columns[{i}]"
            if name in self._list_fields:
                convert = "tuple_or_none" if self.spec.by_name[name].nullable else "tuple"
                values = f"map({convert}, {values})"
            slot = _slot(self.record, name)
            if slot is not None:
                namespace[f"set{i}"] = slot.__set__
                lines.append(f"    drain(map(set{i}, recs, {values}))")
            else:
                namespace[f"name{i}"] = name
                namespace["setattr"] = object.__setattr__
                lines.append(f"    drain(map(setattr, recs, repeat(name{i}), {values}))")
        lines.append("    return recs")
        exec("\n".join(lines), namespace)  # the source is built from field names only
        loader: Callable[[Sequence[Sequence[Any]], int], list[R]] = namespace["load_columns"]
        return loader

    def row(self, rec: R) -> Row:
        """The row storing ``rec``: its fields, derived columns, NULL for the rest."""
        row = {name: getattr(rec, name) for name in self.fields}
        for name in self._list_fields:
            if row[name] is not None:
                row[name] = list(row[name])
        for col in self._derived:
            source = row[str(col.derived_from)]
            row[col.name] = None if source is None else source.casefold()
        for name in self._hidden:
            row[name] = None
        return row

    def new_record(
        self,
        fields: Mapping[str, Any],
        system: Mapping[str, Any],
        *,
        clock: Callable[[], datetime],
        id_factory: Callable[[], str],
    ) -> R:
        """A new, valid record from caller ``fields`` (only those a caller may set, the
        required ones included) and ``system`` fields only the core may set; its id and
        timestamps are asked of ``id_factory`` and ``clock`` once the fields are valid."""
        if not self._givable.issuperset(fields):
            for name in fields:
                self.spec.column(name)  # an unknown field says so
                if name not in self._givable:
                    raise ValidationError("is set by clonestore and cannot be given", field=name)
        missing = self.required.difference(fields)
        if missing:
            raise ValidationError("is required", field=sorted(missing)[0])
        now = clock()
        values: dict[str, Any] = {"version": 1}
        if "id" not in fields:
            values["id"] = id_factory()
        for name in self._now_fields:
            if name not in fields:
                values[name] = now
        if "created_at" in fields and "updated_at" not in fields:
            values["updated_at"] = fields["created_at"]  # an imported row, never changed since
        values.update(fields)
        values.update(system)
        try:
            rec = self.record(**values)
        except TypeError as exc:  # attrs: an argument the record does not take
            raise ValidationError(str(exc)) from None
        for name, limit in self._vector_limits:
            vector = getattr(rec, name)
            if vector is not None and len(vector) > limit:
                raise ValidationError(
                    f"more than {limit} items (the longest vector this store keeps)", field=name
                )
        self._check_history(rec)
        return rec

    def _check_history(self, rec: R) -> None:
        """A new record's times in their order: ``updated_at`` and ``deleted_at`` (when
        set) not before ``created_at``; :class:`ValidationError` naming the later field."""
        fields: Any = rec
        created = fields.created_at
        if fields.updated_at < created:
            raise ValidationError("may not be earlier than created_at", field="updated_at")
        if self.soft_delete and fields.deleted_at is not None and fields.deleted_at < created:
            raise ValidationError("may not be earlier than created_at", field="deleted_at")

    def replacement(self, row: Row, given: Mapping[str, Any]) -> dict[str, Any]:
        """The changes that make a stored row ``row`` (a new record's, from caller fields
        ``given``): every column a caller sets, ``created_at`` only when ``given``;
        the version goes up by one and, on a soft-deleted row, the row is live again
        (unless ``given`` deletes it)."""
        changes = {name: row[name] for name in self._replaced}
        if "created_at" not in given:
            del changes["created_at"]
        if CASCADE in self.spec.by_name:
            changes[CASCADE] = None
        changes["version"] = Increment(1)
        return changes

    def changes(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validated column changes from caller keywords (only ``settable="yes"``), with
        the derived columns they change."""
        out: dict[str, Any] = {}
        changeable = self._changeable
        for name, value in changes.items():
            check_value = changeable.get(name)
            if check_value is None:
                self.spec.column(name)  # an unknown field says so
                raise ValidationError("cannot be changed with update()", field=name)
            out[name] = check_value(value)
        self.add_derived(out)
        return out

    def add_derived(self, changes: dict[str, Any]) -> None:
        """Add to ``changes`` the derived columns (``email_key``) of the columns it sets."""
        for col in self._derived:
            if col.derived_from in changes:
                source = changes[col.derived_from]
                changes[col.name] = None if source is None else source.casefold()


def _tuple_or_none(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _slot(cls: type, name: str) -> Any:
    """The slot descriptor holding field ``name`` of ``cls`` (None: not a slot)."""
    for klass in cls.__mro__:
        found = vars(klass).get(name)
        if found is not None:
            return found if isinstance(found, types.MemberDescriptorType) else None
    return None
