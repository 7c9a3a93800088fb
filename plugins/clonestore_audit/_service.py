"""``store.audit``: the tamper-evident, append-only audit trail."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import attrs

from clonestore import (
    ClonestoreError,
    Conflict,
    Operation,
    Store,
    ValidationError,
)
from clonestore.query import TRUE, And, Cond, Expr, Or, OrderBy
from clonestore.spi import Aggregate, AppendOnlyTables, Row, capabilities_of
from clonestore_audit._capture import (
    DEFAULT_MASK,
    Draft,
    Masker,
    checked_details,
    clip,
    failure_draft,
    only_increments,
    owner_of,
    success_drafts,
)
from clonestore_audit._chain import (
    ChainReport,
    ChainVerifier,
    ranges,
    stamp_of,
)
from clonestore_audit._records import AuditEntry, AuditStatistics, check_action, entry
from clonestore_audit._tables import ANCHORS, HEAD, LOG, PERSONAL, RESULTS, SYSTEM
from clonestore_audit._writer import BY_SEQ, ChainWriter, head_id

__all__ = ["AuditConfig", "AuditLog"]

log = logging.getLogger("clonestore.audit")

_PAGE: Final = 1000
#: The most days statistics and purges look back: 100 years.
MAX_DAYS: Final = 36_600
#: Entries of the transactions still open (or rolled back) kept at most, per store.
_PENDING: Final = 10_000
#: Newest first across chains (``seq`` counts within a chain): by time, then by id,
#: which sorts rows of one microsecond in the order they were made (``entry_id``).
_NEWEST: Final = (OrderBy("stamp", desc=True), OrderBy("id", desc=True))
_OLDEST: Final = (OrderBy("stamp"), OrderBy("id"))

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
        #: id(op) -> (op, its entries) of writes whose transaction has not committed.
        self._pending: dict[int, tuple[Operation, list[Draft]]] = {}
        self._pending_lock = threading.Lock()
        #: Whether the backend keeps the log append-only (table option
        #: ``append_only``; the store refuses to open on a backend that cannot).
        self.guarded = bool(store.tables[LOG.name].append_only)

    # ------------------------------------------------------------------ plugin hooks

    def before_write(self, op: Operation) -> None:
        """Read what an update or delete is about to change."""
        if op.kind in ("update", "delete") and op.where is not None:
            if op.action.endswith(".erase_user"):
                return
            if op.kind == "update" and only_increments(op.changes):
                return  # the rows before are the rows after, less the amounts
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
        """Keep the entries of a successful write until its transaction commits."""
        drafts = success_drafts(op, result, self._take_before(op), self.masker)
        with self._pending_lock:
            if len(self._pending) >= _PENDING:  # of transactions rolled back: never appended
                for key in list(self._pending)[: _PENDING // 2]:
                    del self._pending[key]
            self._pending[id(op)] = (op, drafts)

    def before_commit(self, ops: Sequence[Operation]) -> None:
        """Append the entries of a transaction's writes, in its transaction: one
        append per chain the transaction touched."""
        drafts: list[Draft] = []
        with self._pending_lock:
            for op in ops:
                kept = self._pending.get(id(op))
                if kept is not None and kept[0] is op:
                    del self._pending[id(op)]
                    drafts.extend(kept[1])
        if drafts:
            self._append(drafts, closing=True)

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
        digest, which is kept while the salt goes. Each chain that had rows
        redacted gets an ``audit.redact`` entry naming them (``info["seqs"]``:
        ``[first, last]`` runs): ``verify()`` fails a redacted row no such entry
        names, so a redaction cannot be forged by nulling columns.
        """
        mine = Or((self._about(user_id), Cond("owner", "eq", user_id)))
        where = And((mine, Cond("salt", "isnull", False)))
        changes: dict[str, Any] = dict.fromkeys(PERSONAL)
        changes.update(salt=None, redacted_at=self._now())
        with self._own_transaction():
            rows = self._backend.update(LOG, where, changes)
            by_owner: dict[str, list[int]] = {}
            for row in rows:
                by_owner.setdefault(row["owner"], []).append(row["seq"])
            self._append(
                Draft(
                    action="audit.redact",
                    owner=owner,
                    resource_type="audit",
                    info={"seqs": ranges(seqs), "rows": len(seqs)},
                )
                for owner, seqs in sorted(by_owner.items())
            )
        return len(rows)

    def _own_transaction(self) -> AbstractContextManager[Any]:
        """The caller's transaction if there is one, else a new one."""
        return nullcontext() if self._store.in_transaction else self._backend.transaction()

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Entries by or about the user, oldest first, and the head of the user's chain."""
        rows = self._backend.select(LOG, self._about(user_id), _OLDEST)
        head = self._backend.get(HEAD, head_id(user_id))
        chain = None if head is None else {k: head[k] for k in ("id", "name", "seq", "hash")}
        return {"audit": [attrs.asdict(entry(row)) for row in rows], "audit_chain": chain}

    @staticmethod
    def _about(user_id: str) -> Expr:
        """Rows by or about the user (its personal fields name the user)."""
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
        details = checked_details(details)
        actor_id = clip("actor_id", actor_id or context.actor_id)
        subject_id = clip("subject_id", subject_id)
        draft = Draft(
            action=check_action(action),
            owner=owner_of(subject_id, actor_id),
            resource_type=clip("resource_type", resource_type),
            resource_id=clip("resource_id", resource_id),
            result=result,
            error_type=None if error is None else "event",
            request_id=clip("request_id", request_id or context.request_id),
            info=info,
            actor_id=actor_id,
            subject_id=subject_id,
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
            conds.append(Cond("stamp", "gte", stamp_of(_aware("since", since))))
        if until is not None:
            conds.append(Cond("stamp", "lt", stamp_of(_aware("until", until))))
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
            where = And((where, Cond("stamp", "gte", stamp_of(_aware("since", since)))))
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
        rows = self._backend.select(LOG, where, _NEWEST, limit, offset)
        return [entry(row) for row in rows]

    def user_statistics(self, user_id: str, days: int = 30) -> AuditStatistics:
        """What the user did in the last ``days`` days: totals per action and result."""
        if type(days) is not int or not 1 <= days <= MAX_DAYS:
            raise ValidationError(f"must be an integer from 1 to {MAX_DAYS}", field="days")
        where = And(
            (
                Cond("actor_id", "eq", user_id),
                Cond("stamp", "gte", stamp_of(self._now() - timedelta(days=days))),
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

        Every chain stays verifiable: in one transaction, an anchor keeps each
        cut chain's last removed row (``seq`` and ``hash``), the rows go, and an
        ``audit.purge`` entry in that chain (chained like any other) confirms the
        anchor. Runs in its own transaction (not inside ``store.transaction()``).
        """
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float)):
            raise ValidationError("must be a number of days", field="older_than_days")
        if not 0 <= older_than_days <= MAX_DAYS:  # NaN fails too
            raise ValidationError(f"must be from 0 to {MAX_DAYS}", field="older_than_days")
        if self._store.in_transaction:
            raise ClonestoreError("audit.purge() runs in its own transaction; call it outside one")
        cutoff = self._now() - timedelta(days=older_than_days)
        for _ in range(_PURGE_ATTEMPTS):
            try:
                with self._backend.transaction():
                    return self._purge(stamp_of(cutoff) - 1, cutoff)
            except _Raced:
                continue
        raise Conflict("entries kept arriving under the purge's cutoff; try again")

    def _purge(self, up_to: int, cutoff: datetime) -> int:
        backend = self._backend
        groups = self._prefixes(up_to)
        if not groups:
            return 0
        up_to = min(up_to, *(g["up_to"] for g in groups))
        expected = 0
        anchors: list[tuple[str, int, str, int]] = []
        for group in groups:
            owner, last, count = group["owner"], group["last"], group["n"]
            (boundary,) = backend.select(
                LOG, And((Cond("owner", "eq", owner), Cond("seq", "eq", last))), limit=1
            )
            anchors.append((owner, last, boundary["hash"], count))
            expected += count
            backend.upsert(
                ANCHORS,
                ("owner", "seq"),
                {
                    "id": str(uuid.uuid4()),
                    "owner": owner,
                    "seq": last,
                    "hash": boundary["hash"],
                    "removed": count,
                    "purged_at": self._now(),
                },
                {"removed": count, "purged_at": self._now()},
            )
        if self.guarded and "append_only" in capabilities_of(backend):
            removed = cast(AppendOnlyTables, backend).purge(LOG, up_to)
        else:
            removed = backend.delete(LOG, Cond("stamp", "lte", up_to))
        if removed != expected:  # an entry committed under the cutoff meanwhile
            raise _Raced
        self._append(
            Draft(
                action="audit.purge",
                owner=owner,
                resource_type="audit",
                info={
                    "anchor_seq": seq,
                    "anchor_hash": digest,
                    "removed": count,
                    "cutoff": cutoff.isoformat(),
                },
            )
            for owner, seq, digest, count in anchors
        )
        return removed

    def _prefixes(self, up_to: int) -> list[Row]:
        """Per owner, the rows at or under ``up_to`` (``n``, ``first`` and ``last``
        seq), the bound lowered until they are a prefix of every chain (stamps
        only fall back in 0001's rows, written by processes whose clocks differed)."""
        while True:
            groups = self._backend.aggregate(
                LOG,
                Cond("stamp", "lte", up_to),
                ("owner",),
                {
                    "n": Aggregate("count"),
                    "first": Aggregate("min", "seq"),
                    "last": Aggregate("max", "seq"),
                },
            )
            lowered = up_to
            for group in groups:
                group["up_to"] = up_to
                if group["last"] - group["first"] + 1 == group["n"]:
                    continue
                later = self._backend.select(
                    LOG,
                    And((Cond("owner", "eq", group["owner"]), Cond("stamp", "gt", up_to))),
                    BY_SEQ,
                    limit=1,
                )
                if later:
                    after = self._backend.aggregate(
                        LOG,
                        And(
                            (
                                Cond("owner", "eq", group["owner"]),
                                Cond("seq", "gte", later[0]["seq"]),
                            )
                        ),
                        (),
                        {"low": Aggregate("min", "stamp")},
                    )
                    lowered = min(lowered, after[0]["low"] - 1)
            if lowered == up_to:
                return [g for g in groups if g["n"]]
            up_to = lowered

    # ------------------------------------------------------------------ heads and anchors

    def head(self, owner: str | None = None) -> tuple[int, str]:
        """``(seq, hash)`` to keep outside the database, to detect a rewritten log.

        With ``owner``: that owner's chain's last row (``(0, genesis)`` before
        its first). Without: the global anchor (:meth:`anchor`), which commits to
        every chain's head.
        """
        if owner is not None:
            return self.chain_head(owner)
        return self.anchor()

    def anchor(self) -> tuple[int, str]:
        """Record a global anchor and return it: an ``audit.anchor`` entry in the
        system chain naming the head (owner, ``seq``, ``hash``) of every chain that
        moved since the last anchor; its ``(seq, hash)`` commits, through the
        system chain, to every earlier anchor too. ``verify(expect_head=...)``
        fails when the log no longer reaches it. When nothing moved since the last
        anchor, that one is returned; ``(0, GENESIS)`` for an empty log. Its cost
        grows with the number of chains that moved (one row read and one update
        each); call it periodically (``clonestore audit head``)."""
        backend = self._backend
        with self._own_transaction():
            moved = [
                (row["name"], row["seq"], row["hash"])
                for row in backend.select(HEAD, Cond("moved", "eq", True), (OrderBy("name"),))
                if row["name"] != SYSTEM
            ]
            system = self.chain_head(SYSTEM)
            if not moved:
                if system[0] == 0:
                    return system
                last = backend.select(
                    LOG,
                    And((Cond("owner", "eq", SYSTEM), Cond("seq", "eq", system[0]))),
                    limit=1,
                )
                if last and last[0]["action"] == "audit.anchor":
                    return system
            (row,) = self._append(
                [
                    Draft(
                        action="audit.anchor",
                        owner=SYSTEM,
                        resource_type="audit",
                        info={"heads": [list(head) for head in moved]},
                    )
                ]
            )
            for owner, seq, _ in moved:
                backend.update(
                    HEAD,
                    And((Cond("id", "eq", head_id(owner)), Cond("seq", "eq", seq))),
                    {"moved": False},
                )
        return row["seq"], row["hash"]

    # ------------------------------------------------------------------ verification

    def verify(
        self, owner: str | None = None, *, expect_head: tuple[int, str] | None = None
    ) -> ChainReport:
        """Check the chains; the report names the first row where one breaks (a
        changed, removed, reordered or forged-redacted row, a cut not explained by
        a purge, a tail gone past the chain's head or past a recorded anchor).

        :param owner: check that owner's chain alone (fast: its rows only).
        :param expect_head: a global anchor kept earlier (``head()``): fails when
            the log no longer reaches it (the system chain must still hold that
            row, and every chain the anchors name must still reach its head there).
        """
        missing = self._missing_tables()
        if missing:
            return ChainReport(
                ok=False,
                checked=0,
                reason=f"the audit tables {', '.join(missing)} are missing (dropped, or "
                "never migrated: clonestore migrate --plugins audit)",
            )
        try:
            if owner is not None:
                wanted = {} if expect_head is None else self._wanted(expect_head)
                return self._verify_chain(
                    owner, self._anchors().get(owner, {}), wanted.get(owner, {})
                )
            return self._verify_all(expect_head)
        except ClonestoreError as exc:
            reason = f"the audit tables cannot be read: {exc}"
            return ChainReport(ok=False, checked=0, reason=reason)

    def _missing_tables(self) -> list[str]:
        missing_tables = getattr(self._backend, "missing_tables", None)
        if missing_tables is None:
            return []
        found: list[str] = missing_tables([LOG, HEAD, ANCHORS])
        return found

    def _anchors(self) -> dict[str, dict[int, str]]:
        out: dict[str, dict[int, str]] = {}
        for row in self._backend.select(ANCHORS, TRUE):
            out.setdefault(row["owner"], {})[row["seq"]] = row["hash"]
        return out

    def _wanted(self, expect_head: tuple[int, str] | None) -> dict[str, dict[int, str]]:
        """``owner -> seq -> hash`` of rows the recorded anchors (and ``expect_head``)
        name. A malformed anchor entry is skipped here: its chain's check fails it."""
        wanted: dict[str, dict[int, str]] = {}
        rows = self._backend.select(
            LOG, And((Cond("owner", "eq", SYSTEM), Cond("action", "eq", "audit.anchor"))), BY_SEQ
        )
        for row in rows:
            try:
                for owner, seq, digest in row["info"]["heads"]:
                    wanted.setdefault(str(owner), {})[int(seq)] = str(digest)
            except (TypeError, ValueError, KeyError):
                continue
        if expect_head is not None and expect_head[0] > 0:
            wanted.setdefault(SYSTEM, {})[expect_head[0]] = expect_head[1]
        return wanted

    def _verify_all(self, expect_head: tuple[int, str] | None) -> ChainReport:
        anchors = self._anchors()
        wanted = self._wanted(expect_head)
        owners = set(anchors) | set(wanted)
        owners.update(row["name"] for row in self._backend.select(HEAD, TRUE))
        owners.update(
            group["owner"]
            for group in self._backend.aggregate(LOG, TRUE, ("owner",), {"n": Aggregate("count")})
        )
        checked = 0
        for owner in sorted(owners):
            report = self._verify_chain(owner, anchors.get(owner, {}), wanted.get(owner, {}))
            if not report.ok:
                return attrs.evolve(report, checked=checked + report.checked)
            checked += report.checked
        return ChainReport(ok=True, checked=checked, chains=len(owners))

    def _verify_chain(
        self, owner: str, anchors: dict[int, str], wanted: dict[int, str]
    ) -> ChainReport:
        verifier = ChainVerifier(owner, anchors, wanted)
        backend = self._backend
        after = 0
        for attempt in range(3):
            while True:
                where = And((Cond("owner", "eq", owner), Cond("seq", "gt", after)))
                try:
                    rows = backend.select(LOG, where, BY_SEQ, limit=_PAGE)
                except ClonestoreError:
                    rows = self._readable(where)  # up to the row that cannot be read
                    if len(rows) < _PAGE:
                        verifier.feed(rows)
                        unread = {"seq": verifier.last[0] + 1 if verifier.last else after + 1}
                        return verifier.broken(unread, "malformed row (its values cannot be read)")
                if not verifier.feed(rows):
                    return verifier.finish(None)
                if verifier.last is not None:
                    after = verifier.last[0]
                if len(rows) < _PAGE:
                    break
            found = backend.get(HEAD, head_id(owner))
            try:
                head = None if found is None else (int(found["seq"]), str(found["hash"]))
            except (TypeError, ValueError, KeyError):
                return verifier.broken(None, "the chain's head row is malformed")
            if head is not None and head[0] > after and attempt < 2:
                continue  # appended while we read: read on to the head
            return verifier.finish(head)
        raise AssertionError("unreachable")


    def _readable(self, where: Expr) -> list[Row]:
        """The rows of a page that fails to read, one by one, up to the first that fails."""
        rows: list[Row] = []
        while len(rows) < _PAGE:
            last = rows[-1]["seq"] if rows else None
            page_where = where if last is None else And((where, Cond("seq", "gt", last)))
            try:
                found = self._backend.select(LOG, page_where, BY_SEQ, limit=1)
            except ClonestoreError:
                break
            if not found:
                break
            rows.extend(found)
        return rows


class _Raced(Exception):
    """An entry joined the rows under a purge's cutoff while it ran."""


_PURGE_ATTEMPTS: Final = 5


def _aware(field: str, value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError("must be a timezone-aware datetime", field=field)
    return value.astimezone(UTC)
