"""Export and erasure of everything stored about a user."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs

from clonestore.errors import NotFound
from clonestore.query import Cond

if TYPE_CHECKING:
    from clonestore.store import Store

__all__ = ["OWNED_TABLES", "erase_user", "export_user", "to_json"]

#: Tables holding rows owned by a user, in the order they are erased.
OWNED_TABLES: Final = ("turns", "sessions", "memories", "documents", "face_models", "voice_models")


def to_json(value: Any) -> Any:
    """A JSON-ready copy: records become dicts, datetimes ISO 8601, Decimals strings."""
    if attrs.has(type(value)):
        return {f.name: to_json(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _user_row(store: Store, user_id: str) -> dict[str, Any]:
    users = store.users
    user_id = users._check_id(user_id)
    row = users._get_row(user_id)
    if row is None:
        raise NotFound(f"no user with id {user_id}")
    return row


def export_user(store: Store, user_id: str) -> dict[str, Any]:
    """Everything about the user, deleted rows included, plus plugin sections."""
    row = _user_row(store, user_id)
    out: dict[str, Any] = {"user": to_json(store.users._load(row))}
    for name in reversed(OWNED_TABLES):
        repo = getattr(store, name)
        records = repo.find_many(where={"user_id": row["id"]}, with_deleted=True)
        out[name] = [to_json(r) for r in records]
    for section in store.hook.clonestore_export_user(store=store, user_id=row["id"]):
        out.update(to_json(dict(section)))
    return out


def erase_user(store: Store, user_id: str) -> dict[str, int]:
    """Remove the user and every row about them, plugins first, in one transaction."""
    row = _user_row(store, user_id)
    removed: dict[str, int] = {}
    with store.gateway.atomic():
        store.hook.clonestore_erase_user(store=store, user_id=row["id"])
        for name in OWNED_TABLES:
            repo = getattr(store, name)
            removed[name] = repo._delete("erase_user", Cond("user_id", "eq", row["id"]))
        removed["users"] = store.users._delete(
            "erase_user", Cond("id", "eq", row["id"]), key=row["id"]
        )
    return removed
