"""``store.audit``: the tamper-evident, append-only audit trail."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

from clonestore import (
    ClonestoreError,
    Operation,
    Store,
    ValidationError,
)
from clonestore.spi import (
    TRUE,
    Aggregate,
    And,
    AppendOnlyTables,
    Cond,
    Expr,
    Increment,
    Or,
    Row,
)
from clonestore_audit._capture import (
    DEFAULT_MASK,
    Draft,
    Masker,
    clip,
    failure_draft,
    json_ready,
    success_drafts,
)
from clonestore_audit._chain import (
    ChainReport,
    Verifier,
    canonical,
)
from clonestore_audit._records import AuditEntry, AuditStatistics, check_action, entry
from clonestore_audit._tables import ANCHORS, HEAD, HEAD_ID, LOG, PERSONAL, RESULTS
from clonestore_audit._writer import BY_SEQ, BY_SEQ_DESC, ChainWriter

__all__ = ["AuditConfig", "AuditLog"]

log = logging.getLogger("clonestore.audit")

_PAGE: Final = 1000

#: ``audit.log()`` arguments of the original API -> ours.
_ORIGINAL_NAMES: Final = {"user_id": "actor_id", "resource": "resource_id", "metadata": "details"}


@attrs.frozen(kw_only=True)
class AuditConfig:
    """Settings of an audit trail (see ``AuditPlugin``)."""

    mask: tuple[str, ...] = DEFAULT_MASK
    guard: bool = True


class AuditLog(ChainWriter):
    """The audit plugin's service, attached as ``store.audit``.

    Append-only: it has no update or delete; ``purge`` removes old rows behind
    an anchor and ``erase_user`` erases personal fields, both keeping the
    chain verifiable.
    """

    def __init__(self, store: Store, config: AuditConfig) -> None:
        super().__init__(store)
        self.config = config
        self.masker = Masker(config.mask)
        self._before = threading.local()
        #: Whether the backend keeps the log append-only (table option
        #: ``append_only``; the store refuses to open on a backend that cannot).
        self.guarded = bool(store.tables[LOG.name].append_only)

    # ------------------------------------------------------------------ plugin hooks

    def before_write(self, op: Operation) -> None:
        """Read what an update or delete is about to change."""
        if op.kind in ("update", "delete") and op.where is not None:
            if op.action.endswith(".erase_user"):
                return
            if op.key is not None:  # one row: a primary-key read
                found = self._backend.get(op.table, op.key)
                rows = [] if found is None else [found]
            else:
                rows = self._backend.select(op.table, op.where)
            stash = self._stash()
            if len(stash) >= 64:  # writes that failed with a non-clonestore error
                del stash[:32]
            stash.append((op, rows))

    def _stash(self) -> list[tuple[Operation, list[Row]]]:
        stash: list[tuple[Operation, list[Row]]] | None = getattr(self._before, "ops", None)
        if stash is None:
            stash = self._before.ops = []
        return stash

    def _take_before(self, op: Operation) -> list[Row] | None:
        stash = self._stash()
        for i in range(len(stash) - 1, -1, -1):
            if stash[i][0] is op:
                rows = stash[i][1]
                # Later entries belong to writes made inside this one (by another
                # plugin's hook) that never finished.
                del stash[i:]
                return rows
        return None

    def after_write(self, op: Operation, result: Any) -> None:
        """Record a successful write, in its transaction."""
        self._append(success_drafts(op, result, self._take_before(op), self.masker))

    def write_failed(self, op: Operation, error: BaseException) -> None:
        """Record a refused or failed write, outside any transaction."""
        self._take_before(op)
        try:
            self._append([failure_draft(op, error, self.masker)])
        except ClonestoreError as exc:  # never hide the write's own error behind ours
            log.error("audit: could not record the failure of %s: %s", op.action, exc)

    def erase_user(self, user_id: str) -> int:
        """Erase the personal fields of every row by or about the user; how many rows.

        Hashes stay: each row's personal fields are chained through a salted
        digest, which is kept while the salt goes, so ``verify()`` still passes.
        """
        changes: dict[str, Any] = dict.fromkeys(PERSONAL)
        changes.update(salt=None, redacted_at=self._now())
        rows = self._backend.update(LOG, self._about(user_id), changes)
        return len(rows)

    def export_user(self, user_id: str) -> dict[str, Any]:
        rows = self._backend.select(LOG, self._about(user_id), BY_SEQ)
        return {"audit": [attrs.asdict(entry(row)) for row in rows]}

    @staticmethod
    def _about(user_id: str) -> Expr:
        return Or((Cond("actor_id", "eq", user_id), Cond("subject_id", "eq", user_id)))

    # ------------------------------------------------------------------ public API

    def log(
        self,
        action: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str = "success",
        details: Any = None,
        actor_id: str | None = None,
        subject_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        error: str | None = None,
        **original: Any,
    ) -> AuditEntry:
        """Record an explicit event (``"user.login"``, ``"document.upload"``).

        Who and where default to ``store.context(...)``. ``details`` is any JSON
        value (personal: erased with the user). Inside ``store.transaction()``
        the entry is part of the transaction. The original API's names are
        accepted too: ``user_id`` (``actor_id``), ``resource`` (``resource_id``)
        and ``metadata`` (``details``).
        """
        for name, value in original.items():
            ours = _ORIGINAL_NAMES.get(name)
            if ours is None:
                raise ValidationError("unknown argument of audit.log()", field=name)
            given = {"actor_id": actor_id, "resource_id": resource_id, "details": details}
            if given[ours] is not None:
                raise ValidationError(f"give {ours} or {name}, not both", field=name)
            if ours == "actor_id":
                actor_id = value
            elif ours == "resource_id":
                resource_id = value
            else:
                details = value
        return self._log(
            action,
            resource_type=resource_type,
            resource_id=resource_id,
            result=result,
            details=details,
            actor_id=actor_id,
            subject_id=subject_id,
            ip_address=ip_address,
            user_agent=user_agent,
            request_id=request_id,
            error=error,
        )

    def _log(
        self,
        action: str,
        *,
        info: Any = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str = "success",
        details: Any = None,
        actor_id: str | None = None,
        subject_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        error: str | None = None,
    ) -> AuditEntry:
        if result not in RESULTS:
            raise ValidationError(f"must be one of {', '.join(RESULTS)}", field="result")
        context = self._store.current_context
        details = json_ready(details)
        try:
            canonical(details)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"not a JSON value: {exc}", field="details") from None
        draft = Draft(
            action=check_action(action),
            resource_type=clip("resource_type", resource_type),
            resource_id=clip("resource_id", resource_id),
            result=result,
            error_type=None if error is None else "event",
            request_id=clip("request_id", request_id or context.request_id),
            info=info,
            actor_id=clip("actor_id", actor_id or context.actor_id),
            subject_id=clip("subject_id", subject_id),
            ip_address=clip("ip_address", ip_address or context.ip_address),
            user_agent=clip("user_agent", user_agent or context.user_agent),
            details=details,
            error_message=clip("error_message", error),
        )
        return entry(self._append([draft])[0])

    def find(
        self,
        *,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        actor_id: str | None = None,
        subject_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str | None = None,
        request_id: str | None = None,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, newest first.

        ``action`` is exact, or a prefix when it ends with ``*`` (``"user.*"``);
        ``since`` is inclusive and ``until`` exclusive.
        """
        conds: list[Expr] = []
        if action is not None:
            if action.endswith("*"):
                conds.append(Cond("action", "startswith", action[:-1]))
            else:
                conds.append(Cond("action", "eq", action))
        if since is not None:
            conds.append(Cond("created_at", "gte", _aware("since", since)))
        if until is not None:
            conds.append(Cond("created_at", "lt", _aware("until", until)))
        for name, value in (
            ("actor_id", actor_id),
            ("subject_id", subject_id),
            ("resource_type", resource_type),
            ("resource_id", resource_id),
            ("result", result),
            ("request_id", request_id),
        ):
            if value is not None:
                conds.append(Cond(name, "eq", value))
        return self._select(And(tuple(conds)), limit, offset)

    def find_by_user(
        self, user_id: str, *, limit: int = 100, offset: int = 0, since: datetime | None = None
    ) -> list[AuditEntry]:
        """Entries the user acted in or that are about the user, newest first."""
        where: Expr = self._about(user_id)
        if since is not None:
            where = And((where, Cond("created_at", "gte", _aware("since", since))))
        return self._select(where, limit, offset)

    def find_by_user_id(
        self, user_id: str, *, limit: int = 100, offset: int = 0, since: datetime | None = None
    ) -> list[AuditEntry]:
        """The original API's name for :meth:`find_by_user`."""
        return self.find_by_user(user_id, limit=limit, offset=offset, since=since)

    def _select(self, where: Expr, limit: int, offset: int) -> list[AuditEntry]:
        if type(limit) is not int or not 0 <= limit <= 10_000:
            raise ValidationError("must be an integer from 0 to 10000", field="limit")
        if type(offset) is not int or offset < 0:
            raise ValidationError("must be an integer >= 0", field="offset")
        rows = self._backend.select(LOG, where, BY_SEQ_DESC, limit, offset)
        return [entry(row) for row in rows]

    def user_statistics(self, user_id: str, days: int = 30) -> AuditStatistics:
        """What the user did in the last ``days`` days: totals per action and result."""
        if type(days) is not int or days < 1:
            raise ValidationError("must be an integer >= 1", field="days")
        where = And(
            (
                Cond("actor_id", "eq", user_id),
                Cond("created_at", "gte", self._now() - timedelta(days=days)),
            )
        )
        groups = self._backend.aggregate(
            LOG,
            where,
            ("action", "result"),
            {
                "n": Aggregate("count"),
                "first": Aggregate("min", "created_at"),
                "last": Aggregate("max", "created_at"),
            },
        )
        by_action: dict[str, int] = {}
        by_result: dict[str, int] = {}
        for group in groups:
            by_action[group["action"]] = by_action.get(group["action"], 0) + group["n"]
            by_result[group["result"]] = by_result.get(group["result"], 0) + group["n"]
        return AuditStatistics(
            user_id=user_id,
            days=days,
            total=sum(by_action.values()),
            failures=by_result.get("failure", 0),
            by_action=dict(sorted(by_action.items())),
            by_result=dict(sorted(by_result.items())),
            first_at=min((g["first"] for g in groups), default=None),
            last_at=max((g["last"] for g in groups), default=None),
        )

    def purge(self, older_than_days: float = 90) -> int:
        """Remove entries older than ``older_than_days`` days; how many went.

        The chain stays verifiable: first an anchor keeps the last removed
        row's ``seq`` and ``hash``, then the rows go, then an ``audit.purge``
        entry (chained like any other) confirms the anchor. Runs in its own
        transaction (not inside ``store.transaction()``).
        """
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float)):
            raise ValidationError("must be a number of days", field="older_than_days")
        if older_than_days < 0:
            raise ValidationError("must not be negative", field="older_than_days")
        if self._store.in_transaction:
            raise ClonestoreError("audit.purge() runs in its own transaction; call it outside one")
        backend = self._backend
        cutoff = self._now() - timedelta(days=older_than_days)
        kept = backend.select(LOG, Cond("created_at", "gte", cutoff), BY_SEQ, limit=1)
        last = kept if kept else backend.select(LOG, TRUE, BY_SEQ_DESC, limit=1)
        if not last:
            return 0
        up_to = last[0]["seq"] - 1 if kept else last[0]["seq"]
        boundary = backend.select(LOG, Cond("seq", "eq", up_to), limit=1)
        if not boundary:
            return 0  # nothing older than the cutoff is left
        anchor_hash = boundary[0]["hash"]
        with backend.transaction():
            backend.upsert(
                ANCHORS,
                ("seq",),
                {
                    "id": str(uuid.uuid4()),
                    "seq": up_to,
                    "hash": anchor_hash,
                    "removed": 0,
                    "purged_at": self._now(),
                },
                {"purged_at": self._now()},
            )
        if self.guarded and isinstance(backend, AppendOnlyTables):
            removed = backend.purge(LOG, up_to)
        else:
            removed = backend.delete(LOG, Cond("seq", "lte", up_to))
        backend.update(ANCHORS, Cond("seq", "eq", up_to), {"removed": Increment(removed)})
        self._log(
            "audit.purge",
            resource_type="audit",
            info={
                "anchor_seq": up_to,
                "anchor_hash": anchor_hash,
                "removed": removed,
                "cutoff": cutoff.isoformat(),
            },
        )
        return removed

    def verify(self) -> ChainReport:
        """Check the whole chain; the report names the first row where it breaks
        (a changed, removed or reordered row) on every backend."""
        backend = self._backend
        anchors = {row["seq"]: row["hash"] for row in backend.select(ANCHORS, TRUE)}
        head_row = backend.get(HEAD, HEAD_ID)
        head = None if head_row is None else (head_row["seq"], head_row["hash"])
        verifier = Verifier(anchors, head)
        after: int | None = None
        while True:
            where = TRUE if after is None else Cond("seq", "gt", after)
            rows = backend.select(LOG, where, BY_SEQ, limit=_PAGE)
            if not verifier.feed(rows) or len(rows) < _PAGE:
                break
            after = rows[-1]["seq"]
        return verifier.finish()


def _aware(field: str, value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError("must be a timezone-aware datetime", field=field)
    return value.astimezone(UTC)
