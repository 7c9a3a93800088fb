"""From a write passing through the gateway to the audit rows that record it."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from clonestore import Context, Operation, ValidationError
from clonestore.schema import check
from clonestore.spi import Column, Increment, Row, TableSpec
from clonestore_audit._tables import SYSTEM

__all__ = [
    "DEFAULT_MASK",
    "MASKED",
    "Draft",
    "Masker",
    "checked_details",
    "failure_draft",
    "only_increments",
    "owner_of",
    "success_drafts",
]

#: Column-name patterns (``fnmatch``) whose values the audit never stores.
DEFAULT_MASK: Final = (
    "*password*",
    "*secret*",
    "*token*",
    "*api_key*",
    "text_content",
    "user_transcript",
    "llm_response",
    "embedding",
)
#: What a masked value is recorded as.
MASKED: Final = "***"
#: Column sets a :class:`Masker` remembers (past it, it starts over).
_PLANS: Final = 1000
#: Columns every update changes; recording them says nothing.
_BOOKKEEPING: Final = frozenset({"updated_at", "version"})
_LIMITS: Final = {
    "actor_id": 200,
    "ip_address": 100,
    "user_agent": 1000,
    "request_id": 200,
    "error_message": 10_000,
}


@attrs.frozen(kw_only=True)
class Draft:
    """An audit row before it is numbered, salted and chained."""

    action: str
    #: The chain the row joins: the subject user, else the actor, else the system's.
    owner: str = SYSTEM
    resource_type: str | None = None
    resource_id: str | None = None
    result: str = "success"
    error_type: str | None = None
    request_id: str | None = None
    info: Any = None
    actor_id: str | None = None
    subject_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    changes: Any = None
    details: Any = None
    error_message: str | None = None


def clip(name: str, value: str | None) -> str | None:
    """Text fields are cut to their column's length rather than refused."""
    if value is None:
        return None
    text = str(value).replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text[: _LIMITS.get(name, 200)]


#: Values JSON takes as they are (exact types: a subclass goes the long way).
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def json_ready(value: Any) -> Any:
    """Row values as JSON: datetimes in ISO 8601, Decimals as strings, tuples as lists."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Increment):
        return {"increment": json_ready(value.amount)}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    return value


#: The rules of an entry's ``details``: the core's for JSON columns (nesting depth, 64-bit
#: integers, finite numbers, text without NUL), so every backend stores the same value.
_DETAILS: Final = Column(name="details", kind="json", nullable=True)
#: Deeper than this, ``details`` is refused before it is walked recursively (the core's
#: own limit is lower; this only keeps the walk off Python's recursion limit).
_WALK_DEPTH: Final = 100


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and dicts in ``value`` nest deeper than ``limit`` (without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def checked_details(value: Any) -> Any:
    """``value`` as an entry's details (JSON-ready, see :func:`json_ready`), or
    :class:`ValidationError` naming ``details``; never a RecursionError."""
    if _deeper_than(value, _WALK_DEPTH):
        raise ValidationError(f"JSON nested deeper than {_WALK_DEPTH} levels", field="details")
    return check(_DETAILS, json_ready(value))


class Masker:
    """Turns rows and changes into what the audit keeps: JSON, masked, no derived columns."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._masked: dict[str, bool] = {}
        #: (table, names) -> each recorded name and whether it is masked.
        self._plans: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, bool], ...]] = {}

    def masked(self, name: str) -> bool:
        hit = self._masked.get(name)
        if hit is None:
            hit = self._masked[name] = any(fnmatch.fnmatchcase(name, p) for p in self.patterns)
        return hit

    def _plan(self, table: TableSpec, names: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
        """The names recorded (derived columns left out), each with whether it is masked."""
        key = (table.name, names)
        plan = self._plans.get(key)
        if plan is None:
            by_name = table.by_name
            plan = tuple(
                (name, self.masked(name))
                for name in names
                if (col := by_name.get(name)) is None or col.derived_from is None
            )
            if len(self._plans) >= _PLANS:  # writes of ever-new column sets
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def fields(
        self, table: TableSpec, values: Mapping[str, Any], names: Iterable[str]
    ) -> dict[str, Any]:
        get = values.get
        return {
            name: MASKED if masked else json_ready(get(name))
            for name, masked in self._plan(table, tuple(names))
        }


def _subject(table: TableSpec, row: Mapping[str, Any]) -> str | None:
    value = row.get("id") if table.name == "users" else row.get("user_id")
    return None if value is None else str(value)


def owner_of(subject: str | None, actor: str | None) -> str:
    """The chain a row joins: its subject's, else its actor's, else the system's."""
    return subject or actor or SYSTEM


def _base(op: Operation, context: Context) -> dict[str, Any]:
    return {
        "action": op.action,
        "resource_type": op.table.name,
        "request_id": clip("request_id", context.request_id),
        "actor_id": clip("actor_id", context.actor_id),
        "ip_address": clip("ip_address", context.ip_address),
        "user_agent": clip("user_agent", context.user_agent),
    }


def _erasure(op: Operation) -> bool:
    # The erasure's own records keep which rows went, never what they held.
    return op.action.endswith(".erase_user")


def success_drafts(
    op: Operation, result: Any, before: Sequence[Row] | None, masker: Masker
) -> list[Draft]:
    """One draft per row the write touched (one ``noop`` draft if it touched none)."""
    base = _base(op, op.context)
    table = op.table
    erasure = _erasure(op)
    drafts: list[Draft] = []

    def add(row: Mapping[str, Any], changes: Any) -> None:
        subject = _subject(table, row)
        drafts.append(
            Draft(
                **base,
                owner=owner_of(subject, base["actor_id"]),
                resource_id=str(row["id"]),
                subject_id=None if erasure else subject,
                changes=None if erasure else changes,
            )
        )

    if op.kind == "insert":
        add(op.changes, {"after": masker.fields(table, op.changes, op.changes)})
    elif op.kind == "insert_many":
        for row in op.rows:
            add(row, {"after": masker.fields(table, row, row)})
    elif op.kind == "upsert" and isinstance(result, Mapping):
        add(result, {"after": masker.fields(table, result, result)})
    elif op.kind == "update":
        old = {row["id"]: row for row in before or ()}
        names = [n for n in op.changes if n not in _BOOKKEEPING]
        for row in result or ():
            previous = old.get(row["id"])
            if previous is None and before is None:
                previous = _before_increments(row, op.changes)
            changed = (
                names if previous is None else [n for n in names if previous.get(n) != row.get(n)]
            )
            add(
                row,
                {
                    "before": masker.fields(table, previous or {}, changed),
                    "after": masker.fields(table, row, changed),
                },
            )
    elif op.kind == "delete":
        if before is None and isinstance(result, int) and result:
            # Not read beforehand (an erasure): record how many rows went.
            owner = owner_of(op.key if table.name == "users" else None, base["actor_id"])
            drafts.append(Draft(**base, owner=owner, resource_id=op.key, info={"rows": result}))
        for row in before or ():
            add(row, {"before": masker.fields(table, row, row)})
    if not drafts:
        changes = None if erasure else {"attempted": _attempted(table, op, masker)}
        subject = op.key if table.name == "users" else None
        drafts.append(
            Draft(
                **base,
                owner=owner_of(subject, base["actor_id"]),
                resource_id=op.key,
                result="noop",
                changes=changes,
            )
        )
    return drafts


def only_increments(changes: Mapping[str, Any]) -> bool:
    """Whether an update only adds to columns (and stamps its bookkeeping): what a
    row held before is then its new values less the amounts, with no read."""
    return all(isinstance(v, Increment) for n, v in changes.items() if n not in _BOOKKEEPING)


def _before_increments(row: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if isinstance(value, Increment) and row.get(name) is not None:
            out[name] = row[name] - value.amount
    return out


def _attempted(table: TableSpec, op: Operation, masker: Masker) -> dict[str, Any]:
    names = [n for n in op.changes if op.kind != "update" or n not in _BOOKKEEPING]
    return masker.fields(table, op.changes, names)


def failure_draft(op: Operation, error: BaseException, masker: Masker) -> Draft:
    """The record of a refused or failed write."""
    table = op.table
    subject: str | None
    if table.name == "users":
        subject = op.key or (str(op.changes["id"]) if "id" in op.changes else None)
    else:
        owner = op.changes.get("user_id") or (op.rows[0].get("user_id") if op.rows else None)
        subject = None if owner is None else str(owner)
    attempted: dict[str, Any] = {}
    if op.changes:
        attempted["attempted"] = _attempted(table, op, masker)
    if op.rows:
        attempted["rows"] = len(op.rows)
    base = _base(op, op.context)
    return Draft(
        **base,
        owner=owner_of(subject, base["actor_id"]),
        resource_id=op.key,
        result="failure",
        error_type=type(error).__name__,
        error_message=clip("error_message", str(error)),
        subject_id=None if _erasure(op) else subject,
        changes=None if _erasure(op) else (attempted or None),
    )
