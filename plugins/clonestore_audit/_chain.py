"""The hash chain: how a row's hash is computed, and how a chain is verified.

``hash = sha256(canonical JSON of the CHAINED fields)``, where ``prev_hash``
is the previous row's hash (:data:`GENESIS` for the first row ever) and
``personal_digest = sha256(salt + canonical JSON of the PERSONAL fields)``.
Erasing a row's personal fields (and its salt) leaves its hash, and so the
chain, intact; the salt keeps the digest from confirming a guessed value.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from clonestore_audit._tables import CHAINED, PERSONAL

__all__ = ["GENESIS", "ChainReport", "Verifier", "canonical", "personal_digest", "row_hash"]

#: ``prev_hash`` of the first row.
GENESIS: Final = "0" * 64


def canonical(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, datetimes in ISO 8601)."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_iso,
    ).encode("utf-8")


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not chained")


def new_salt() -> str:
    return secrets.token_hex(16)


def personal_digest(salt: str, row: Mapping[str, Any]) -> str:
    body = canonical({name: row.get(name) for name in PERSONAL})
    return hashlib.sha256(salt.encode() + body).hexdigest()


def row_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({name: row[name] for name in CHAINED})).hexdigest()


@attrs.frozen(kw_only=True)
class ChainReport:
    """What ``audit.verify()`` found: ``ok``, how many rows it ``checked`` and,
    when the chain breaks, the first row where it does and why."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


class Verifier:
    """Walks rows in ``seq`` order; the first problem is the report."""

    def __init__(self, anchors: Mapping[int, str], head: tuple[int, str] | None) -> None:
        self._anchors = anchors
        self._head = head
        self._checked = 0
        self._last: tuple[int, str] | None = None
        self._first: Mapping[str, Any] | None = None
        self._anchor: tuple[int, str] | None = None
        self._confirmed: set[tuple[Any, Any]] = set()
        self._head_seen = False
        self.report: ChainReport | None = None

    def _broken(self, row: Mapping[str, Any] | None, reason: str) -> ChainReport:
        self.report = ChainReport(
            ok=False,
            checked=self._checked,
            first_bad_seq=None if row is None else row["seq"],
            first_bad_id=None if row is None else row["id"],
            reason=reason,
        )
        return self.report

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> bool:
        """Check more rows; False once the chain is broken."""
        for row in rows:
            if self.report is not None:
                return False
            self._check(row)
        return self.report is None

    def _check(self, row: Mapping[str, Any]) -> None:
        seq = row["seq"]
        if self._last is None:
            self._first = row
            if seq == 1:
                expected = GENESIS
            elif seq - 1 in self._anchors:
                self._anchor = (seq - 1, self._anchors[seq - 1])
                expected = self._anchor[1]
            else:
                self._broken(row, f"rows before seq {seq} are missing and no purge explains it")
                return
        else:
            if seq != self._last[0] + 1:
                self._broken(row, f"rows {self._last[0] + 1}..{seq - 1} are missing")
                return
            expected = self._last[1]
        if row["prev_hash"] != expected:
            self._broken(row, "prev_hash does not match the previous row (changed or reordered)")
            return
        if row_hash(row) != row["hash"]:
            self._broken(row, "the row was changed after it was written")
            return
        if row["salt"] is None:
            if any(row.get(name) is not None for name in PERSONAL):
                self._broken(row, "personal fields on a redacted row")
                return
        elif personal_digest(row["salt"], row) != row["personal_digest"]:
            self._broken(row, "personal fields were changed after they were written")
            return
        if row["action"] == "audit.purge" and isinstance(row["info"], dict):
            info = row["info"]
            self._confirmed.add((info.get("anchor_seq"), info.get("anchor_hash")))
        if self._head is not None and seq == self._head[0]:
            self._head_seen = True
            if row["hash"] != self._head[1]:
                self._broken(row, "the chain's head does not match this row")
                return
        self._last = (seq, row["hash"])
        self._checked += 1

    def finish(self) -> ChainReport:
        """The report, once every row was fed."""
        if self.report is not None:
            return self.report
        if self._anchor is not None and self._anchor not in self._confirmed:
            return self._broken(
                self._first, f"purge anchor at seq {self._anchor[0]} has no audit.purge entry"
            )
        if self._head is not None and self._head[0] > 0 and not self._head_seen:
            last = self._last[0] if self._last else max(self._anchors, default=0)
            if self._head[0] > last:
                return self._broken(None, f"rows {last + 1}..{self._head[0]} are missing")
        return ChainReport(ok=True, checked=self._checked)
