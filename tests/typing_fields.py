"""What ``clonestore/fields.py`` must say, derived from the records: the generator
``tests/test_typing.py`` compares the module with (run this file to rewrite it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs

from clonestore.records import TABLES
from clonestore.schema import Column

FIELDS_MODULE = Path(__file__).resolve().parents[1] / "clonestore" / "fields.py"

_HEADER = '''"""The keyword arguments of each repository's ``create`` and ``update``, as TypedDicts.

``store.users.create(**fields: Unpack[UserCreate])`` and
``store.users.update(id, **changes: Unpack[UserChanges])``: a misspelt or
system field (``nmae=``, ``version=``) is a type error for mypy and pyright,
as it is a :class:`~clonestore.ValidationError` when the call runs. Value types
are what the store accepts (a list field takes a list or a tuple; an id, a
string or a :class:`uuid.UUID`).

Generated from the records by ``tests/typing_fields.py`` (``python
tests/typing_fields.py`` rewrites it); ``tests/test_typing.py`` fails when the
two disagree. Do not edit by hand.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Required, TypedDict

__all__ = [
{names}
]
'''

_KIND_TYPES = {
    "id": "str | uuid.UUID",
    "key": "str",
    "text": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "datetime": "datetime",
    "decimal": "Decimal | int",
    "list": "list[str] | tuple[str, ...]",
    "vector": "list[float] | tuple[float, ...]",
}


def _value_type(column: Column, annotation: Any) -> str:
    if column.kind == "json":
        text = str(annotation).replace(" | None", "")
    else:
        text = _KIND_TYPES[column.kind]
    return f"{text} | None" if column.nullable else text


def _defaults_to_now(column: Column) -> bool:
    return column.kind == "datetime" and column.settable == "create" and not column.nullable


def expected_source() -> str:
    """The text of ``clonestore/fields.py`` for the records as they are."""
    names: list[str] = []
    classes: list[str] = []
    for spec in TABLES.values():
        record = spec.record
        assert record is not None
        fields = {f.name: f for f in attrs.fields(record)}
        for suffix, settable, doc in (
            ("Create", ("yes", "create"), "create"),
            ("Changes", ("yes",), "update"),
        ):
            name = f"{record.__name__}{suffix}"
            names.append(name)
            lines = [
                f"class {name}(TypedDict, total=False):",
                f'    """What ``store.{spec.name}.{doc}`` takes."""',
                "",
            ]
            for column in spec.columns:
                if column.derived_from is not None or column.settable not in settable:
                    continue
                field = fields[column.name]
                kind = _value_type(column, field.type)
                required = (
                    suffix == "Create"
                    and field.default is attrs.NOTHING
                    and not _defaults_to_now(column)
                )
                lines.append(f"    {column.name}: {f'Required[{kind}]' if required else kind}")
            classes.append("\n".join(lines))
    header = _HEADER.format(names="\n".join(f'    "{n}",' for n in sorted(names)))
    return header + "\n\n" + "\n\n\n".join(classes) + "\n"


if __name__ == "__main__":
    FIELDS_MODULE.write_text(expected_source(), encoding="utf-8")
    sys.stdout.write(f"wrote {FIELDS_MODULE}\n")
