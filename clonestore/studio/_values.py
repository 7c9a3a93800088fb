"""Text from query strings and forms into field values, and values into text for pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from clonestore.errors import ValidationError
from clonestore.query import OPERATORS
from clonestore.schema import ORDERABLE, Column, TableSpec

__all__ = ["RESERVED", "display", "parse_filters", "parse_value"]

#: Query parameters of a table page that are not filters.
RESERVED = frozenset({"cursor", "size", "order", "deleted", "token", "_field", "_op", "_value"})

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def _bool(text: str, field: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationError(f"must be true or false, got {text!r}", field=field)


def _scalar(column: Column, text: str) -> Any:
    kind, name = column.kind, column.name
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "decimal":
            return Decimal(text)
        if kind == "datetime":
            value = datetime.fromisoformat(text)
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (ValueError, InvalidOperation):
        raise ValidationError(f"not a valid {kind}: {text!r}", field=name) from None
    if kind == "bool":
        return _bool(text, name)
    return text


def parse_value(column: Column, text: str) -> Any:
    """The value a form's ``text`` stands for in ``column`` (empty means null where allowed;
    JSON, lists and vectors are written as JSON)."""
    if text == "" and column.nullable:
        return None
    if column.kind in ("json", "list", "vector"):
        try:
            return json.loads(text)
        except ValueError:
            raise ValidationError(f"not valid JSON: {text[:60]!r}", field=column.name) from None
        except RecursionError:
            raise ValidationError("JSON nested too deeply", field=column.name) from None
    return _scalar(column, text)


def parse_filters(spec: TableSpec, params: list[tuple[str, str]]) -> dict[str, Any]:
    """Repository lookups from query parameters named like them (``status=completed``,
    ``started_at__gte=2030-01-01``, ``tags__overlap=a,b``, ``ended_at__isnull=true``);
    an empty value is no filter."""
    where: dict[str, Any] = {}
    for key, text in params:
        if key in RESERVED or text == "":
            continue
        name, _, op = key.partition("__")
        column = spec.column(name)
        op = op or "eq"
        if op not in OPERATORS:
            raise ValidationError(f"unknown lookup {op!r}", field=key)
        if op == "isnull":
            where[key] = _bool(text, key)
        elif op in ("in", "not_in"):
            where[key] = [_scalar(column, part.strip()) for part in text.split(",")]
        elif column.kind == "list":
            where[key] = [part.strip() for part in text.split(",") if part.strip()]
        elif column.kind in ORDERABLE:
            where[key] = _scalar(column, text)
        else:
            raise ValidationError(f"a {column.kind} field cannot be filtered", field=name)
    return where


def display(value: Any, limit: int = 80) -> str:
    """``value`` as short text for a table cell."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, float) for v in value):
        return f"[{len(value)} floats: {', '.join(f'{v:.3f}' for v in value[:3])}, …]"
    if isinstance(value, (tuple, list, dict)):
        text = json.dumps(list(value) if isinstance(value, tuple) else value, default=str)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def form_text(value: Any) -> str:
    """``value`` as the text of an edit field (what :func:`parse_value` reads back)."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
