"""Generates ``clonestore/fields.py`` (the keywords of each repository's ``create`` and
``update`` as TypedDicts) from the records.

    python tools/generate_fields.py           # rewrite clonestore/fields.py
    python tools/generate_fields.py --check   # exit 1 if it is stale

``tests/test_typing.py`` runs the check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from clonestore.records import TABLES  # noqa: E402
from clonestore.repositories._mapping import RecordMapping  # noqa: E402
from clonestore.schema import Column  # noqa: E402

FIELDS_MODULE = Path(__file__).resolve().parents[1] / "clonestore" / "fields.py"

_HEADER = '''"""The keyword arguments of each repository's ``create`` and ``update``, as TypedDicts.

``store.users.create(**fields: Unpack[UserCreate])`` and
``store.users.update(id, **changes: Unpack[UserChanges])``: a misspelt or
system field (``nmae=``, ``version=``) is a type error for mypy and pyright,
as it is a :class:`~clonestore.ValidationError` when the call runs. Value types
are what the store accepts (a list field takes a list or a tuple; an id, a
string or a :class:`uuid.UUID`; a vector, any sequence or numpy array of numbers).

Generated from the records by ``tools/generate_fields.py`` (``python
tools/generate_fields.py`` rewrites it); ``tests/test_typing.py`` fails when the
two disagree. Do not edit by hand.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Required, TypedDict

from clonestore.schema import VectorLike

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
    "vector": "VectorLike",
}


def _value_type(column: Column, annotation: Any) -> str:
    if column.kind == "json":
        text = str(annotation).replace(" | None", "")
    else:
        text = _KIND_TYPES[column.kind]
    return f"{text} | None" if column.nullable else text


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
                required = suffix == "Create" and column.name in RecordMapping(spec).required
                lines.append(f"    {column.name}: {f'Required[{kind}]' if required else kind}")
            classes.append("\n".join(lines))
    header = _HEADER.format(names="\n".join(f'    "{n}",' for n in sorted(names)))
    return header + "\n\n" + "\n\n\n".join(classes) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the module, or with ``--check`` say whether it is current."""
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    expected = expected_source()
    if check:
        current = FIELDS_MODULE.read_text(encoding="utf-8") == expected
        sys.stdout.write(f"{FIELDS_MODULE.name} is {'current' if current else 'stale'}\n")
        return 0 if current else 1
    FIELDS_MODULE.write_text(expected, encoding="utf-8")
    sys.stdout.write(f"wrote {FIELDS_MODULE}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
