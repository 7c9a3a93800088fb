"""Appending to the audit chains: numbering, salting, hashing, and the owner's head
compare-and-set that orders concurrent appenders of one owner (and no one else)."""

from __future__ import annotations

import functools
import hashlib
import itertools
import threading
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import attrs

from clonestore import AlreadyExists, Conflict, Store
from clonestore.query import And, Cond, OrderBy
from clonestore.spi import Row, UpdateAndInsertMany, capabilities_of
from clonestore_audit._capture import Draft
from clonestore_audit._chain import genesis, new_salt, personal_digest, row_hash, stamp_of
from clonestore_audit._tables import HEAD, LOG, SYSTEM

__all__ = ["BY_SEQ", "BY_SEQ_DESC", "ChainWriter", "entry_id", "head_id"]

#: How often an append retries after another writer moved the owner's head.
MAX_APPEND_ATTEMPTS: Final = 100
BY_SEQ: Final = (OrderBy("seq"), OrderBy("id"))
BY_SEQ_DESC: Final = (OrderBy("seq", desc=True), OrderBy("id"))
#: Rows of one chain inserted one by one (more go in one insert_many).
_ONE_BY_ONE: Final = 3
#: Rows of one chain inserted with the head's move in one statement, at most.
_IN_ONE_STATEMENT: Final = 16
#: Heads remembered per store (past it, the memory starts over).
_CACHED_HEADS: Final = 10_000
_HEADS: Final = uuid.UUID("6a7d2c44-1c2e-4a53-9c1f-2f0e6d5b8a01")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DRAFT_FIELDS: Final = tuple(field.name for field in attrs.fields(Draft))


@functools.lru_cache(maxsize=_CACHED_HEADS)
def head_id(owner: str) -> str:
    """The id of an owner's row in ``audit_heads`` (0001's single head is the system's)."""
    return str(_HEADS) if owner == SYSTEM else str(uuid.uuid5(_HEADS, owner))


@attrs.frozen
class Head:
    """An owner's last row: ``seq``, ``hash`` and ``stamp``."""

    seq: int
    hash: str
    stamp: int


def entry_id(stamp: int, number: int, owner: str, seq: int) -> str:
    """A row id that sorts by time: ``stamp``, then ``number`` (the writer counts the
    rows it makes, so rows of one microsecond keep the order they were made in), then
    48 bits of a digest of ``owner`` and ``seq`` (no two rows of the log share them).

    Nothing random: two stores given the same writes make the same ids (the
    differential properties compare every audit row), and ids still differ
    between processes, whose rows of one owner never share a ``seq``."""
    digest = hashlib.blake2b(f"{owner}\0{seq}".encode(), digest_size=6).digest()
    number = (stamp % 2**60) << 68 | (number % 2**20) << 48 | int.from_bytes(digest)
    return str(uuid.UUID(int=number))


class ChainWriter:
    """Appends rows to the owners' chains of one store's audit log."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._backend = store.backend
        self._heads: dict[str, Head] = {}
        self._lock = threading.Lock()
        #: Numbers the rows this writer makes (see :func:`entry_id`).
        self._made = itertools.count()
        backend = store.backend
        #: The backend when it moves the head and inserts rows in one statement.
        self._together: UpdateAndInsertMany | None = (
            cast(UpdateAndInsertMany, backend)
            if "update_and_insert_many" in capabilities_of(backend)
            else None
        )

    def _now(self) -> datetime:
        return self._store.clock().astimezone(UTC)

    def chain_head(self, owner: str) -> tuple[int, str]:
        """``(seq, hash)`` of the owner's last row (``(0, genesis)`` for a new chain)."""
        row = self._backend.get(HEAD, head_id(owner))
        if row is None:
            return 0, genesis(owner)
        return row["seq"], row["hash"]

    def _load_head(self, owner: str) -> Head:
        backend = self._backend
        row = backend.get(HEAD, head_id(owner))
        if row is None:  # a new chain (or a removed head: verify() reports that chain)
            last = backend.select(LOG, Cond("owner", "eq", owner), BY_SEQ_DESC, limit=1)
            seq, digest, stamp = (
                (last[0]["seq"], last[0]["hash"], last[0]["stamp"])
                if last
                else (0, genesis(owner), 0)
            )
            try:
                # A savepoint: on PostgreSQL a writer starting the same chain at the
                # same moment makes the loser's upsert a unique violation (ON CONFLICT
                # covers one index, and the head's id and name are both unique), which
                # must not abort the caller's transaction.
                with backend.transaction():
                    row = backend.upsert(
                        HEAD,
                        ("name",),
                        {
                            "id": head_id(owner),
                            "name": owner,
                            "seq": seq,
                            "hash": digest,
                            "stamp": stamp,
                            "moved": seq > 0,
                        },
                        {},
                    )
            except AlreadyExists:  # the other writer's head is in: start from it
                row = backend.get(HEAD, head_id(owner))
                if row is None:
                    raise Conflict("the audit chain kept moving; try again") from None
        head = Head(row["seq"], row["hash"], row["stamp"])
        self._remember(owner, head)
        return head

    def _remember(self, owner: str, head: Head | None) -> None:
        with self._lock:
            if head is None:
                self._heads.pop(owner, None)
                return
            if len(self._heads) >= _CACHED_HEADS:
                self._heads.clear()
            self._heads[owner] = head

    def _chain(
        self, owner: str, drafts: Sequence[tuple[int, Draft]], now: int, head: Head
    ) -> list[Row]:
        stamp = max(now, head.stamp)  # non-decreasing within a chain
        created_at = _EPOCH + timedelta(microseconds=stamp)
        seq, previous = head.seq, head.hash
        rows: list[Row] = []
        for number, draft in drafts:
            seq += 1
            salt = new_salt()
            row: Row = {
                "id": entry_id(now, number, owner, seq),
                "owner": owner,
                "seq": seq,
                "stamp": stamp,
                "created_at": created_at,
                **{name: getattr(draft, name) for name in _DRAFT_FIELDS},
                "salt": salt,
                "redacted_at": None,
                "prev_hash": previous,
            }
            row["personal_digest"] = personal_digest(salt, row)
            row["hash"] = previous = row_hash(row)
            rows.append(row)
        return rows

    def _append(self, drafts: Iterable[Draft], *, closing: bool = False) -> list[Row]:
        """Number, chain and insert rows, each in its owner's chain, in the caller's
        transaction if any; the rows in the order of ``drafts``.

        :param closing: the caller's transaction is about to commit and rolls back
            whole if this raises (``before_commit``): the rows need no savepoint.
        """
        now = stamp_of(self._now())
        by_owner: dict[str, list[tuple[int, Draft]]] = {}
        made = self._made
        for draft in drafts:  # numbered in the order of the drafts: what find() sorts ties by
            by_owner.setdefault(draft.owner, []).append((next(made), draft))
        if not by_owner:
            return []
        scope: AbstractContextManager[Any] = (
            nullcontext() if closing else self._backend.transaction()
        )
        out: list[Row] = []
        with scope:
            # Owners in one order, so two transactions never wait on each other's heads
            # in a cycle.
            for owner in sorted(by_owner):
                out.extend(self._append_owned(owner, by_owner[owner], now))
        return out

    def _append_owned(self, owner: str, drafts: Sequence[tuple[int, Draft]], now: int) -> list[Row]:
        """The head's move compares ``(seq, hash)``: a writer that lost the race matches
        no row and tries again on the new head, so concurrent appenders of an owner
        (threads or processes) form one unbroken chain."""
        backend = self._backend
        for _ in range(MAX_APPEND_ATTEMPTS):
            head = self._heads.get(owner) or self._load_head(owner)
            rows = self._chain(owner, drafts, now, head)
            where = And(
                (
                    Cond("id", "eq", head_id(owner)),
                    Cond("seq", "eq", head.seq),
                    Cond("hash", "eq", head.hash),
                )
            )
            last = rows[-1]
            moves = {
                "seq": last["seq"],
                "hash": last["hash"],
                "stamp": last["stamp"],
                "moved": True,
            }
            if self._together is not None and len(rows) <= _IN_ONE_STATEMENT:
                # The head's move and the rows' insert in one statement: nothing moved
                # means another writer moved it first.
                done = self._together.update_and_insert_many(HEAD, where, moves, LOG, rows, {})
                moved = done is not None
            else:
                # No savepoint: the caller's transaction (or the one _append opened)
                # is rolled back if an insert fails.
                moved = bool(backend.update(HEAD, where, moves))
                if moved and len(rows) <= _ONE_BY_ONE:
                    for row in rows:  # cheaper than insert_many's savepoint for a few
                        backend.insert(LOG, row)
                elif moved:
                    backend.insert_many(LOG, rows)
            if moved:
                self._remember(owner, Head(last["seq"], last["hash"], last["stamp"]))
                return rows
            self._remember(owner, None)
        raise Conflict("the audit chain kept moving; try again")
