"""Peewee model classes built from table specs, when a store opens.

A model carries the table's columns (typed with :mod:`.fields`), its primary
key, its unique constraints as (partial) unique indexes and its plain indexes.
Unique constraints hold among live rows only: on tables with ``deleted_at``
the index is partial, ``WHERE deleted_at IS NULL``, plus the constraint's own
``when`` conditions (one active model per user: ``WHERE is_active AND
deleted_at IS NULL``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce
from typing import Any

import peewee

from clonestore.spi import PRIMARY_KEY, TableSpec, Unique

from ._fields import FIELD_CLASSES

__all__ = ["build_model", "build_models", "unique_predicate"]


def unique_predicate(model: type[peewee.Model], spec: TableSpec, unique: Unique) -> Any:
    """The WHERE of a unique constraint's partial index (None: a full index).

    Values are rendered as SQL literals, because an index predicate (and the
    ``ON CONFLICT`` target that must match it) cannot take parameters.
    """
    if unique.columns == PRIMARY_KEY and not unique.when:
        return None  # the primary key holds among all rows, deleted ones too
    fields = model._meta.columns
    terms: list[Any] = []
    for name, value in unique.when:
        field = fields[name]
        if value is True:
            terms.append(field)
        elif value is False:
            terms.append(~field)
        elif value is None:
            terms.append(field.is_null())
        else:
            terms.append(peewee.ValueLiterals(field == peewee.Value(value, unpack=False)))
    if spec.soft_delete:
        terms.append(fields["deleted_at"].is_null())
    if not terms:
        return None
    return reduce(lambda a, b: a & b, terms)


def build_model(
    database: peewee.Database, spec: TableSpec, base: type[peewee.Model] | None = None
) -> type[peewee.Model]:
    """A model class for one table spec, bound to ``database``."""
    attrs: dict[str, Any] = {}
    for col in spec.columns:
        field_cls = FIELD_CLASSES[col.kind]
        # Attribute names get a prefix so that a column called ``update`` or
        # ``select`` cannot shadow a Model method; SQL uses ``column_name``.
        attrs[f"c_{col.name}"] = field_cls(
            null=col.nullable, primary_key=col.name == "id", column_name=col.name
        )

    meta = type("Meta", (), {"database": database, "table_name": spec.name, "indexes": ()})
    attrs["Meta"] = meta
    attrs["__module__"] = __name__
    model: type[peewee.Model] = type(f"{_camel(spec.name)}Model", (base or peewee.Model,), attrs)
    for unique in spec.unique:
        model.add_index(
            peewee.ModelIndex(
                model,
                [model._meta.columns[c] for c in unique.columns],
                unique=True,
                where=unique_predicate(model, spec, unique),
                name=unique.name(spec.name),
            )
        )
    for index in spec.indexes:
        model.add_index(
            peewee.ModelIndex(
                model,
                [model._meta.columns[c] for c in index.columns],
                unique=False,
                where=(
                    model._meta.columns["deleted_at"].is_null()
                    if index.live and spec.soft_delete
                    else None
                ),
                name=index.name(spec.name),
            )
        )
    return model


def build_models(database: peewee.Database, specs: Iterable[TableSpec]) -> list[type[peewee.Model]]:
    """Model classes for ``specs``, in order."""
    return [build_model(database, spec) for spec in specs]


def _camel(name: str) -> str:
    parts: Sequence[str] = [p for p in name.replace("-", "_").split("_") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Table"
