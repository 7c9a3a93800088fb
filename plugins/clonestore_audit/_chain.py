"""The hash chains: how a row's hash is computed, and how one owner's chain is verified.

``hash = sha256(canonical JSON of the CHAINED fields)``, where ``prev_hash``
is the previous row of the same owner's hash (:func:`genesis` of the owner for
its first row) and ``personal_digest = sha256(salt + canonical JSON of the
PERSONAL fields)``. Erasing a row's personal fields (and its salt) leaves its
hash, and so the chain, intact; the salt keeps the digest from confirming a
guessed value. A row erased that way must be named by an ``audit.redact`` entry
of its chain, else it is a forged redaction.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

from clonestore_audit._tables import CHAINED, PERSONAL, SYSTEM

__all__ = [
    "GENESIS",
    "ChainReport",
    "ChainVerifier",
    "canonical",
    "genesis",
    "personal_digest",
    "ranges",
    "row_hash",
    "stamp_of",
]

#: ``prev_hash`` of the system chain's first row (0001's single chain began so).
GENESIS: Final = "0" * 64

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

#: What a tampered row may raise while it is checked: reported as a bad row.
_MALFORMED: Final = (
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    OverflowError,
    RecursionError,
)


def genesis(owner: str) -> str:
    """``prev_hash`` of an owner's first row: bound to the owner, so a chain cannot
    be passed off as another's."""
    if owner == SYSTEM:
        return GENESIS
    return hashlib.sha256(b"clonestore audit chain\x00" + owner.encode()).hexdigest()


def stamp_of(moment: datetime) -> int:
    """A row's ``stamp``: its ``created_at`` in microseconds since 1970 (UTC)."""
    return (moment - _EPOCH) // _MICROSECOND


def ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Sorted ``seq`` numbers as ``[first, last]`` runs (what a redaction names)."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not chained")


#: One encoder for every hash (``json.dumps`` with these options builds one per call).
_CANONICAL: Final = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_iso,
)


def canonical(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, datetimes in ISO 8601)."""
    return _CANONICAL.encode(value).encode("utf-8")


def new_salt() -> str:
    return secrets.token_hex(16)


def personal_digest(salt: str, row: Mapping[str, Any]) -> str:
    body = canonical({name: row.get(name) for name in PERSONAL})
    return hashlib.sha256(salt.encode() + body).hexdigest()


def row_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({name: row[name] for name in CHAINED})).hexdigest()


@attrs.frozen(kw_only=True)
class ChainReport:
    """What ``audit.verify()`` found: ``ok``, how many rows it ``checked`` in how
    many ``chains`` and, when something is wrong, the first place (the chain's
    ``owner``, the row's ``seq`` and ``id``) and why."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    reason: str | None = None
    owner: str | None = None
    chains: int = 0

    def __bool__(self) -> bool:
        return self.ok


class ChainVerifier:
    """Walks one owner's rows in ``seq`` order; the first problem is the report.

    :param anchors: the owner's purge anchors, ``seq -> hash``.
    :param wanted: ``seq -> hash`` of rows a global anchor names: the chain must
        still reach them (or have purged past them).
    """

    def __init__(
        self, owner: str, anchors: Mapping[int, str], wanted: Mapping[int, str] | None = None
    ) -> None:
        self.owner = owner
        self._anchors = anchors
        self._wanted = dict(wanted or {})
        self.checked = 0
        self.last: tuple[int, str] | None = None
        self._stamp = -(2**63)
        self._first: Mapping[str, Any] | None = None
        self._anchor: tuple[int, str] | None = None
        self._confirmed: set[tuple[Any, Any]] = set()
        self._redacted: dict[int, Mapping[str, Any]] = {}
        self._covered: set[int] = set()
        self.report: ChainReport | None = None

    def broken(self, row: Mapping[str, Any] | None, reason: str) -> ChainReport:
        seq = row.get("seq") if row is not None else None
        ident = row.get("id") if row is not None else None
        self.report = ChainReport(
            ok=False,
            checked=self.checked,
            first_bad_seq=seq if isinstance(seq, int) else None,
            first_bad_id=ident if isinstance(ident, str) else None,
            reason=f"chain of {self.owner!r}: {reason}",
            owner=self.owner,
        )
        return self.report

    def feed(self, rows: Iterable[Mapping[str, Any]]) -> bool:
        """Check more rows; False once the chain is broken."""
        for row in rows:
            if self.report is not None:
                return False
            try:
                self._check(row)
            except _MALFORMED as exc:
                self.broken(row, f"malformed row ({type(exc).__name__}: {exc})")
        return self.report is None

    def _check(self, row: Mapping[str, Any]) -> None:
        seq = row["seq"]
        if type(seq) is not int:
            raise TypeError(f"seq is {type(seq).__name__}, not int")
        if self.last is None:
            self._first = row
            if seq == 1:
                expected = genesis(self.owner)
            elif seq - 1 in self._anchors:
                self._anchor = (seq - 1, self._anchors[seq - 1])
                expected = self._anchor[1]
            else:
                self.broken(row, f"rows before seq {seq} are missing and no purge explains it")
                return
        else:
            if seq != self.last[0] + 1:
                self.broken(row, f"rows {self.last[0] + 1}..{seq - 1} are missing")
                return
            expected = self.last[1]
        if row["prev_hash"] != expected:
            self.broken(row, "prev_hash does not match the previous row (changed or reordered)")
            return
        if row_hash(row) != row["hash"]:
            self.broken(row, "the row was changed after it was written")
            return
        stamp = row["stamp"]
        if stamp != stamp_of(row["created_at"]) or stamp < self._stamp:
            self.broken(row, "stamp does not match created_at (purge order forged)")
            return
        if row["salt"] is None:
            if any(row.get(name) is not None for name in PERSONAL):
                self.broken(row, "personal fields on a redacted row")
                return
            self._redacted[seq] = row
        elif personal_digest(row["salt"], row) != row["personal_digest"]:
            self.broken(row, "personal fields were changed after they were written")
            return
        info = row["info"]
        if row["action"] == "audit.purge" and isinstance(info, dict):
            self._confirmed.add((info.get("anchor_seq"), info.get("anchor_hash")))
        elif row["action"] == "audit.redact" and isinstance(info, dict):
            for first, last in info.get("seqs") or ():
                self._covered.update(range(int(first), int(last) + 1))
        want = self._wanted.pop(seq, None)
        if want is not None and want != row["hash"]:
            self.broken(row, "a recorded anchor names another hash for this row (rewritten)")
            return
        self.last = (seq, row["hash"])
        self._stamp = stamp
        self.checked += 1

    def finish(self, head: tuple[int, str] | None) -> ChainReport:
        """The report once every row was fed, given the chain's head (None: no head row)."""
        if self.report is not None:
            return self.report
        if self._anchor is not None and self._anchor not in self._confirmed:
            return self.broken(
                self._first, f"purge anchor at seq {self._anchor[0]} has no audit.purge entry"
            )
        forged = sorted(set(self._redacted) - self._covered)
        if forged:
            return self.broken(
                self._redacted[forged[0]], "redacted row not named by any audit.redact entry"
            )
        cut = self._anchor[0] if self._anchor is not None else 0
        for seq, digest in sorted(self._wanted.items()):
            if seq > cut or (seq == cut and self._anchor is not None and digest != self._anchor[1]):
                last = self.last[0] if self.last else cut
                return self.broken(
                    None, f"rows {last + 1}..{seq} a recorded anchor names are missing"
                )
        if head is None:
            if self.last is not None:
                return self.broken(None, "the chain has rows but no head (audit_heads row removed)")
        elif self.last is None:
            if head[0] > 0:
                return self.broken(None, f"rows 1..{head[0]} are missing")
        elif head[0] > self.last[0]:
            return self.broken(None, f"rows {self.last[0] + 1}..{head[0]} are missing")
        elif head != self.last:
            return self.broken(None, f"the chain's head does not match its row {self.last[0]}")
        return ChainReport(ok=True, checked=self.checked, chains=1)
