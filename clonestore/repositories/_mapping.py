"""Records to rows and back, for one table (private to the repositories).

A record is what callers see (attrs, validated when built); a row is what
the backend stores: the record's fields as plain values (lists for tuples),
derived columns (``email_key``) and columns no record field names. The
repository (:mod:`clonestore.repositories.base`) decides what to read and
write; a :class:`RecordMapping` only converts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import attrs

from clonestore.errors import ValidationError
from clonestore.schema import Column, TableSpec, checker
from clonestore.spi import Row

__all__ = ["RecordMapping"]

R = TypeVar("R")


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
        #: Fields a caller must give to create a record.
        self.required = frozenset(
            f.name
            for f in attributes
            if f.default is attrs.NOTHING
            and spec.by_name[f.name].settable != "no"
            and f.name not in self._now_fields
        )
        #: A stored row as a record, without re-validating it (rows were validated on the
        #: way in, so reads skip the field converters).
        self.load: Callable[[Mapping[str, Any]], R] = self._make_loader()

    def _make_loader(self) -> Callable[[Mapping[str, Any]], R]:
        # Like attrs itself, the function is generated once per record class.
        lines = ["def load(row):", "    rec = new(cls)"]
        for name in self.fields:
            value = f"row[{name!r}]"
            if name in self._list_fields:
                value = f"(None if {value} is None else tuple({value}))"
            lines.append(f"    setattr(rec, {name!r}, {value})")
        lines.append("    return rec")
        namespace: dict[str, Any] = {
            "new": object.__new__,
            "cls": self.record,
            "setattr": object.__setattr__,
        }
        exec("\n".join(lines), namespace)  # the source is built from field names only
        loader: Callable[[Mapping[str, Any]], R] = namespace["load"]
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
        for name in fields:
            col = self.spec.column(name)
            if col.settable == "no" or col.derived_from is not None or name not in self.fields:
                raise ValidationError("is set by clonestore and cannot be given", field=name)
        missing = self.required.difference(fields)
        if missing:
            raise ValidationError("is required", field=sorted(missing)[0])
        now = clock()
        values: dict[str, Any] = {
            "id": id_factory(),
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for name in self._now_fields:
            if name not in fields:
                values[name] = now
        values.update(fields)
        values.update(system)
        try:
            return self.record(**values)
        except TypeError as exc:  # attrs: an argument the record does not take
            raise ValidationError(str(exc)) from None

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
