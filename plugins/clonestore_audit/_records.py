"""What the audit trail returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from clonestore import ValidationError
from clonestore.spi import Row

__all__ = ["AuditEntry", "AuditStatistics", "check_action", "entry"]


@attrs.frozen(kw_only=True)
class AuditEntry:
    """One audit row. ``owner``: the chain it belongs to (the subject user, else the
    actor, else ``"~system"``); ``seq``: its place in that chain. ``redacted``: its
    personal fields were erased (``erase_user``)."""

    id: str
    owner: str
    seq: int
    created_at: datetime
    action: str
    resource_type: str | None
    resource_id: str | None
    result: str
    error_type: str | None
    error_message: str | None
    actor_id: str | None
    subject_id: str | None
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    changes: Any
    details: Any
    info: Any
    hash: str
    redacted: bool


def entry(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        owner=row["owner"],
        seq=row["seq"],
        created_at=row["created_at"],
        action=row["action"],
        resource_type=row["resource_type"],
        resource_id=row["resource_id"],
        result=row["result"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        actor_id=row["actor_id"],
        subject_id=row["subject_id"],
        ip_address=row["ip_address"],
        user_agent=row["user_agent"],
        request_id=row["request_id"],
        changes=row["changes"],
        details=row["details"],
        info=row["info"],
        hash=row["hash"],
        redacted=row["salt"] is None,
    )


@attrs.frozen(kw_only=True)
class AuditStatistics:
    """A user's recorded activity over ``days`` days."""

    user_id: str
    days: int
    total: int
    failures: int
    by_action: dict[str, int]
    by_result: dict[str, int]
    first_at: datetime | None
    last_at: datetime | None


def check_action(action: Any) -> str:
    """An action name: ``noun.verb`` text, at most 200 characters."""
    if type(action) is not str or not action or len(action) > 200 or "\x00" in action:
        raise ValidationError(
            "must be a non-empty string of at most 200 characters", field="action"
        )
    return action
