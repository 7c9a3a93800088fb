"""The README tells the truth about the records: its field reference is generated from
the table specs (this test prints the text to paste when they drift)."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from clonestore.records import TABLES
from clonestore.schema import Column

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- fields:start -->", "<!-- fields:end -->"


def _notes(col: Column, field: attrs.Attribute[object]) -> str:
    notes = []
    if col.settable == "no":
        notes.append("set by clonestore")
    elif col.settable == "create":
        notes.append("set at create only")
    if field.default is attrs.NOTHING and col.settable != "no":
        notes.append("required")
    elif col.nullable:
        notes.append("optional")
    elif not isinstance(field.default, attrs.Factory) and col.settable != "no":
        notes.append(f"default `{field.default}`")
    if col.choices:
        notes.append("one of " + ", ".join(f"`{c}`" for c in col.choices))
    if col.kind in ("text", "list", "vector") and col.max_length is not None:
        unit = "characters" if col.kind == "text" else "items"
        notes.append(f"at most {col.max_length:,} {unit}")
    if col.minimum is not None and col.maximum is not None:
        notes.append(f"from {col.minimum} to {col.maximum}")
    elif col.minimum is not None:
        notes.append(f">= {col.minimum}")
    if col.casefold:
        notes.append("unique among live users, ignoring case")
    if col.validator is not None and col.validator.__doc__:
        rule = col.validator.__doc__.split(". ")[0].replace("``", "`")
        notes.append(rule[:1].lower() + rule[1:])
    return "; ".join(notes)


def field_reference() -> str:
    """The README's field reference, one table per record, from the table specs."""
    out = []
    for name, spec in TABLES.items():
        assert spec.record is not None
        out += [f"**{spec.record.__name__}** (`store.{name}`)", "", "| field | kind | notes |"]
        out.append("| --- | --- | --- |")
        for field in attrs.fields(spec.record):
            col = spec.by_name[field.name]
            out.append(f"| `{field.name}` | {col.kind} | {_notes(col, field)} |")
        out.append("")
    return "\n".join(out).strip()


def test_readme_field_reference_matches_the_records() -> None:
    """The README's field reference is exactly what the records' table specs say."""
    text = README.read_text()
    found = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, flags=re.S)
    expected = field_reference()
    assert found is not None, f"README lacks {START} ... {END}; paste:\n{expected}"
    assert found.group(1).strip() == expected, f"paste between the markers:\n{expected}"


def test_readme_tables_have_no_blank_line_inside() -> None:
    """No markdown table of the README is split by a blank line (its rows would be lost)."""
    lines = README.read_text().splitlines()
    for i in range(1, len(lines) - 1):
        if not lines[i].strip():
            assert not (lines[i - 1].startswith("|") and lines[i + 1].startswith("| `")), i + 1
