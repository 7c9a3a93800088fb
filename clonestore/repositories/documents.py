"""Knowledge documents: a processing workflow, vector ids and tag search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Unpack

from clonestore.errors import InvalidTransition, ValidationError
from clonestore.fields import DocumentChanges, DocumentCreate
from clonestore.query import Cond, conjoin
from clonestore.records import DOCUMENT_STATUSES, Document
from clonestore.repositories.base import MAX_SEARCH_LIMIT, Scored, _bad_int
from clonestore.repositories.owned import OwnedRepository
from clonestore.schema import check
from clonestore.text import RRF_K, fuse, parse_query

__all__ = ["DOCUMENT_TRANSITIONS", "DocumentRepository"]

#: The document workflow: status -> statuses it may move to (retry from failed).
#: A pending document may also complete or fail in one step (the original API's
#: ``updateStatus(id, 'completed')`` right after upload).
DOCUMENT_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "pending": frozenset({"processing", "completed", "failed"}),
    "processing": frozenset({"completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset({"processing"}),
}
_CAS_ATTEMPTS: Final = 10


class DocumentRepository(OwnedRepository[Document]):
    """Documents a clone knows, processed into chunks and vectors."""

    noun = "document"
    search_fields = ("filename", "text_content", "tags")
    initial_values = {"status": ("pending", "move it with update_status()")}

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[DocumentCreate]) -> Document: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[DocumentChanges],
        ) -> Document: ...

    def update_status(
        self,
        id: str,
        status: str,
        *,
        error_message: str | None = None,
        chunk_count: int | None = None,
    ) -> Document:
        """Move the document through pending -> processing -> completed | failed.

        ``completed`` sets ``processed_at`` (and ``chunk_count`` if given);
        ``failed`` keeps ``error_message``; ``processing`` (a retry) clears it.
        """
        id = self._check_id(id)
        if status not in DOCUMENT_STATUSES:
            raise ValidationError(
                f"must be one of {', '.join(DOCUMENT_STATUSES)}; got {status!r}", field="status"
            )
        changes: dict[str, Any] = {"status": status}
        if error_message is not None and status != "failed":
            raise ValidationError(
                "only a failed document has an error message", field="error_message"
            )
        if chunk_count is not None and status != "completed":
            raise ValidationError(
                "only a completed document has a chunk count", field="chunk_count"
            )
        if status == "failed":
            changes["error_message"] = self._check("error_message", error_message)
        elif status == "processing":
            changes["error_message"] = None
        elif status == "completed":
            changes["processed_at"] = self._clock()
            if chunk_count is not None:
                changes["chunk_count"] = self._check("chunk_count", chunk_count)
        for _ in range(_CAS_ATTEMPTS):
            row = self._live_row(id)
            current = row["status"]
            if status not in DOCUMENT_TRANSITIONS[current]:
                raise InvalidTransition(f"document {id} cannot move from {current} to {status}")
            where = conjoin(self._by_id(id, owner=row["user_id"]), Cond("status", "eq", current))
            rows = self._update("update_status", where, self._stamp(dict(changes)), key=id)
            if rows:
                return self._load(rows[0])
        raise InvalidTransition(f"document {id} kept changing status; try again")

    def _check(self, name: str, value: Any) -> Any:
        return check(self.spec.column(name), value)

    def set_vector_ids(self, id: str, vector_ids: Sequence[str]) -> Document:
        """Replace the ids of the document's vectors in the vector store."""
        id = self._check_id(id)
        changes = self._stamp({"vector_ids": self._check("vector_ids", vector_ids)})
        rows = self._update("set_vector_ids", self._by_id(id), changes, key=id)
        if not rows:
            self._live_row(id)
        return self._load(rows[0])

    def search_by_tags(
        self, user_id: str, tags: Sequence[str], match: str = "any"
    ) -> list[Document]:
        """The user's documents with any (``match="any"``) or all (``"all"``) of ``tags``."""
        if match not in ("any", "all"):
            raise ValidationError(f"must be 'any' or 'all', got {match!r}", field="match")
        op = "overlap" if match == "any" else "contains"
        return self.find_many(where={"user_id": self._check_owner(user_id), f"tags__{op}": tags})

    def recall(
        self,
        user_id: str,
        *,
        text: str | None = None,
        ranked: Sequence[str] | None = None,
        limit: int = 10,
        where: Mapping[str, Any] | None = None,
        depth: int = 50,
    ) -> list[Scored[Document]]:
        """The user's live documents best for ``text`` and/or ``ranked``: the text
        search's ranking (its best ``depth``, at least ``limit``) fused with ``ranked``,
        document ids best first as your vector store found them through the documents'
        ``vector_ids`` (ids not among the user's live documents matching ``where`` are
        left out), by reciprocal rank fusion (:func:`clonestore.text.fuse`, ``k`` = 60),
        best first, ties by id. The score is the fused one.
        """
        owner = self._check_owner(user_id)
        if text is None and ranked is None:
            raise ValidationError("recall needs text, ranked ids or both", field="text")
        if error := _bad_int("limit", limit, 0, MAX_SEARCH_LIMIT):
            raise error
        if error := _bad_int("depth", depth, 1, MAX_SEARCH_LIMIT):
            raise error
        if text is not None:
            parse_query(text)
        if ranked is not None:
            if isinstance(ranked, str) or not isinstance(ranked, Sequence):
                raise ValidationError("must be a sequence of document ids", field="ranked")
            ranked = [self._check_id(key) for key in ranked]
        conditions = {**(where or {}), "user_id": owner}
        depth = max(depth, limit)
        rankings: list[list[Document]] = []
        if text is not None:
            rankings.append([s.record for s in self.search(text, limit=depth, where=conditions)])
        if ranked:
            known = {
                d.id: d for d in self.find_many(where={**conditions, "id__in": list(ranked)})
            }
            rankings.append([known[key] for key in dict.fromkeys(ranked) if key in known])
        records = {d.id: d for ranking in rankings for d in ranking}
        fused = fuse([[d.id for d in ranking] for ranking in rankings], RRF_K)
        return [Scored(records[key], value) for key, value in fused[:limit]]
