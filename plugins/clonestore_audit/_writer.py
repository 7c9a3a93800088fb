"""Appending to the audit chain: numbering, salting, hashing, and the head's
compare-and-set that orders concurrent appenders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from clonestore import Conflict, Store
from clonestore.spi import TRUE, And, Cond, Increment, OrderBy, Row, UpdateAndInsert
from clonestore_audit._capture import Draft
from clonestore_audit._chain import GENESIS, new_salt, personal_digest, row_hash
from clonestore_audit._tables import ANCHORS, HEAD, HEAD_ID, LOG

__all__ = ["BY_SEQ", "BY_SEQ_DESC", "ChainWriter"]

#: How often an append retries after another writer moved the chain's head.
MAX_APPEND_ATTEMPTS: Final = 100
BY_SEQ: Final = (OrderBy("seq"), OrderBy("id"))
BY_SEQ_DESC: Final = (OrderBy("seq", desc=True), OrderBy("id"))


class ChainWriter:
    """Appends rows to the chain of one store's audit log."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._backend = store.backend
        self._head: tuple[int, str] | None = None
        backend = store.backend
        #: The backend when it moves the head and inserts a row in one step.
        self._together: UpdateAndInsert | None = (
            backend
            if "update_and_insert" in backend.capabilities and isinstance(backend, UpdateAndInsert)
            else None
        )

    def _now(self) -> datetime:
        return self._store.clock().astimezone(UTC)

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last row: keep it elsewhere to detect a rewritten log."""
        row = self._backend.get(HEAD, HEAD_ID)
        if row is None:
            return self._load_head()
        return row["seq"], row["hash"]

    def _load_head(self) -> tuple[int, str]:
        backend = self._backend
        row = backend.get(HEAD, HEAD_ID)
        if row is None:  # first use (or emptied tables): continue from what is there
            last = backend.select(LOG, TRUE, BY_SEQ_DESC, limit=1)
            if not last:
                last = backend.select(ANCHORS, TRUE, BY_SEQ_DESC, limit=1)
            seq, digest = (last[0]["seq"], last[0]["hash"]) if last else (0, GENESIS)
            row = backend.upsert(
                HEAD,
                ("name",),
                {"id": HEAD_ID, "name": "chain", "seq": seq, "hash": digest},
                {"seq": Increment(0)},
            )
        return row["seq"], row["hash"]

    def _chain(self, drafts: Sequence[Draft], head: tuple[int, str]) -> list[Row]:
        now = self._now()
        seq, previous = head
        rows: list[Row] = []
        for draft in drafts:
            seq += 1
            salt = new_salt()
            row: Row = {
                "id": str(uuid.uuid4()),
                "seq": seq,
                "created_at": now,
                **attrs.asdict(draft, recurse=False),
                "salt": salt,
                "redacted_at": None,
                "prev_hash": previous,
            }
            row["personal_digest"] = personal_digest(salt, row)
            row["hash"] = previous = row_hash(row)
            rows.append(row)
        return rows

    def _append(self, drafts: Sequence[Draft]) -> list[Row]:
        """Number, chain and insert rows, in the caller's transaction if any.

        The head moves by compare-and-set on ``(seq, hash)``: a writer that lost
        the race matches no row and tries again on the new head, so concurrent
        appenders (threads or processes) form one unbroken chain.
        """
        backend = self._backend
        scope: AbstractContextManager[Any] = (
            nullcontext() if self._store.in_transaction else backend.transaction()
        )
        with scope:
            for _ in range(MAX_APPEND_ATTEMPTS):
                head = self._head or self._load_head()
                rows = self._chain(drafts, head)
                where = And(
                    (
                        Cond("id", "eq", HEAD_ID),
                        Cond("seq", "eq", head[0]),
                        Cond("hash", "eq", head[1]),
                    )
                )
                moves = {"seq": rows[-1]["seq"], "hash": rows[-1]["hash"]}
                if len(rows) == 1 and self._together is not None:
                    # The head's move and the row's insert in one step (one statement
                    # on PostgreSQL): nothing moved means another writer moved it first.
                    inserted = self._together.update_and_insert(
                        HEAD, where, moves, LOG, rows[0], {}
                    )
                    moved = inserted is not None
                else:
                    moved = bool(backend.update(HEAD, where, moves))
                    if moved and len(rows) == 1:
                        backend.insert(LOG, rows[0])
                    elif moved:
                        backend.insert_many(LOG, rows)
                if moved:
                    self._head = (rows[-1]["seq"], rows[-1]["hash"])
                    return rows
                self._head = None
        raise Conflict("the audit chain kept moving; try again")
