"""Repositories of the platform, over clonestore's generic :class:`clonestore.Repository`.

Everything the generic repository offers (``get``, ``find_many``, keyset
``page``, ``create``, ``update`` with ``expected_version``, soft ``delete``,
``restore``...) comes for free. Domain operations that need more than that
(compare-and-set moves of the generation queue, per-status counts) use only
public machinery: they make the SPI call through the repository's gateway
(``repo.context.gateway``), naming it with an action, so plugins (audit,
cache) see them like any other read or write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from character_platform.records import (
    GENERATION_STATUSES,
    STYLE_TYPES,
    USAGE,
    Character,
    CharacterTemplate,
    Generation,
)
from clonestore import (
    InvalidTransition,
    NotFound,
    Page,
    Repository,
    Scored,
    TableSpec,
    ValidationError,
)
from clonestore.query import parse_where
from clonestore.repositories import OwnedRepository
from clonestore.schema import check
from clonestore.spi import Aggregate, Increment

if TYPE_CHECKING:
    from character_platform.quota import DailyQuota
    from clonestore import Store

__all__ = [
    "CharacterRepository",
    "CreatorStatistics",
    "GenerationRepository",
    "TemplateRepository",
]

R = TypeVar("R")

#: How many pending generations ``claim_next`` tries per round before reading again.
CLAIM_BATCH: Final = 8
#: Rounds ``claim_next`` makes while other workers keep winning the race.
CLAIM_ROUNDS: Final = 20


# --------------------------------------------------------------------------- public-API helpers


def _compare_and_set(
    repo: Repository[R], verb: str, id: str, expected: Mapping[str, Any], changes: Mapping[str, Any]
) -> R | None:
    """Apply ``changes`` (values or :class:`Increment`) to live row ``id`` only if it
    still has the ``expected`` values.

    One SPI ``update`` whose ``where`` holds the expected values: atomic on every
    backend, so of two racing callers exactly one wins. Bumps ``version`` and
    ``updated_at`` as every repository write does. None when nothing matched.
    """
    where = repo.where({"id": id, **expected})
    values = repo.stamp(
        {
            name: v if isinstance(v, Increment) else check(repo.spec.column(name), v)
            for name, v in changes.items()
        }
    )
    rows = repo.context.gateway.update(
        repo.spec, where, values, action=f"{repo.noun}.{verb}", key=id
    )
    return repo.load(rows[0]) if rows else None


def _count_by(
    repo: Repository[Any], verb: str, lookups: Mapping[str, Any], column: str
) -> dict[Any, int]:
    """How many live rows match ``lookups``, per value of ``column`` (one SPI aggregate)."""
    where = repo.where(lookups)
    aggregates = {"n": Aggregate("count")}
    rows = repo.context.gateway.aggregate(
        repo.spec, where, (column,), aggregates, action=f"{repo.noun}.{verb}"
    )
    return {row[column]: row["n"] for row in rows}


def _delete_where(repo: Repository[Any], verb: str, lookups: Mapping[str, Any]) -> int:
    """Remove every row (live or not) matching ``lookups`` for good; how many."""
    where = repo.where(lookups, with_deleted=True)
    return repo.context.gateway.delete(repo.spec, where, action=f"{repo.noun}.{verb}")


def _check_style(style: Any) -> None:
    if style not in STYLE_TYPES:
        raise ValidationError(
            f"must be one of {', '.join(STYLE_TYPES)}; got {style!r}", field="style_type"
        )


# --------------------------------------------------------------------------- templates


class TemplateRepository(Repository[CharacterTemplate]):
    """``store.character_templates``: starting points for characters (unique names)."""

    noun = "character_template"

    def find_by_name(self, name: str) -> CharacterTemplate | None:
        """The template called ``name``, ignoring case."""
        return self.find_one(name=name)


# --------------------------------------------------------------------------- characters


@attrs.frozen(kw_only=True)
class CreatorStatistics:
    """What one user has made (``characters.user_statistics``)."""

    user_id: str
    characters: int
    public_characters: int
    generations: Mapping[str, int]
    """Generations the user asked for, by status (every status present)."""
    used_today: int
    daily_limit: int

    @property
    def total_generations(self) -> int:
        """All of the user's generations, whatever their status."""
        return sum(self.generations.values())

    @property
    def remaining_today(self) -> int:
        """Generations the user may still ask for today (UTC)."""
        return max(self.daily_limit - self.used_today, 0)


class CharacterRepository(OwnedRepository[Character]):
    """``store.characters``: users' characters and the public gallery.

    Owned: a character's ``user_id`` must be a live user when it is created or
    restored. ``delete`` is a soft delete; a deleted character leaves the
    gallery and takes no new generations.
    """

    noun = "character"
    #: What ``search_gallery`` (clonestore's text search) matches.
    search_fields = ("name", "prompt", "tags")

    def __init__(self, store: Store, spec: TableSpec) -> None:
        super().__init__(store.repository_context, spec)
        #: The store, for the platform's other services (templates, generations, quota).
        self.store = store

    def create_from_template(self, user_id: str, template_id: str, **fields: Any) -> Character:
        """A new character for ``user_id`` from a template; ``fields`` override its values."""
        template = self.store.character_templates.get(template_id)
        values = {
            "name": template.name,
            "prompt": template.prompt,
            "style_type": template.style_type,
            "tags": list(template.tags),
            **fields,
        }
        return self.create(user_id=user_id, template_id=template.id, **values)

    def publish(self, id: str) -> Character:
        """Show the character in the public gallery."""
        return self.update(id, is_public=True)

    def unpublish(self, id: str) -> Character:
        """Take the character out of the public gallery."""
        return self.update(id, is_public=False)

    def gallery(
        self,
        text: str | None = None,
        *,
        style: str | Sequence[str] | None = None,
        tags: Sequence[str] = (),
        match: str = "any",
        order_by: str | Sequence[str] = "-created_at",
        size: int = 20,
        cursor: str | None = None,
    ) -> Page[Character]:
        """One keyset page of public, live characters.

        :param text: a literal substring of the name, matched ignoring case
            (``str.casefold()`` on both sides, the same on every backend;
            ``%``, ``_`` and ``\\`` match themselves).
        :param style: one style type, or several (any of them).
        :param tags: with ``match="any"`` characters having at least one of
            them, with ``match="all"`` characters having every one.
        :param order_by: newest first by default; ties are broken by id.
        :param cursor: ``next_cursor`` of the previous page.
        """
        where = self._gallery_where(style, tags, match)
        if text:
            if not isinstance(text, str):
                raise ValidationError("must be text", field="text")
            where["name_key__contains"] = text.casefold()
        return self.page(where=where, order_by=order_by, size=size, cursor=cursor)

    def search_gallery(
        self,
        text: str,
        *,
        style: str | Sequence[str] | None = None,
        tags: Sequence[str] = (),
        match: str = "any",
        limit: int = 10,
    ) -> list[Scored[Character]]:
        """Public, live characters whose name, prompt and tags hold every word (and quoted
        phrase) of ``text``, best first (BM25, ties by id): clonestore's text search, the
        same on every backend (``findPublicCharacters({search: 'warrior'})`` finds a
        warrior in the prompt). ``style``, ``tags`` and ``match`` as in :meth:`gallery`.
        """
        where = self._gallery_where(style, tags, match)
        return self.search(text, limit=limit, where=where)

    def _gallery_where(
        self, style: str | Sequence[str] | None, tags: Sequence[str], match: str
    ) -> dict[str, Any]:
        where: dict[str, Any] = {"is_public": True}
        if style is not None:
            styles = [style] if isinstance(style, str) else list(style)
            for one in styles:
                _check_style(one)
            where["style_type__in"] = styles
        if tags:
            if match not in ("any", "all"):
                raise ValidationError(f"must be 'any' or 'all', got {match!r}", field="match")
            where[f"tags__{'overlap' if match == 'any' else 'contains'}"] = list(tags)
        return where

    def user_statistics(self, user_id: str) -> CreatorStatistics:
        """Characters (live, public) and generations by status of one user, and today's quota."""
        user = self.store.users.get(user_id)
        by_visibility = _count_by(self, "user_statistics", {"user_id": user.id}, "is_public")
        by_status = _count_by(
            self.store.generations, "user_statistics", {"user_id": user.id}, "status"
        )
        quota = self.store.generation_quota.status(user.id)
        return CreatorStatistics(
            user_id=user.id,
            characters=sum(by_visibility.values()),
            public_characters=by_visibility.get(True, 0),
            generations={status: by_status.get(status, 0) for status in GENERATION_STATUSES},
            used_today=quota.used,
            daily_limit=quota.limit,
        )


# --------------------------------------------------------------------------- generations


class GenerationRepository(Repository[Generation]):
    """``store.generations``: the generation queue.

    ``pending -> running -> succeeded | failed``, and ``failed -> pending`` to
    retry. Every move is a compare-and-set on the current status, so two
    workers never claim the same generation and a finished one never moves
    again. New generations are counted against the daily quota of the user
    who asks (``enqueue``; ``create`` is the same).
    """

    noun = "generation"

    def __init__(self, store: Store, spec: TableSpec, quota: DailyQuota) -> None:
        super().__init__(store.repository_context, spec)
        #: The store, for the users and characters a generation belongs to.
        self.store = store
        self.quota = quota

    def enqueue(self, user_id: str, character_id: str, prompt: str | None = None) -> Generation:
        """Queue a generation of a character (the user's own or a public one).

        The prompt defaults to the character's. Counts against the user's daily
        quota in the same transaction: :class:`~character_platform.QuotaExceeded`
        (a :class:`clonestore.RateLimited`) when it is used up, and then nothing
        is stored.
        """
        user = self.store.users.get(user_id)
        character: Character = self.store.characters.get(character_id)
        if character.user_id != user.id and not character.is_public:
            raise NotFound(f"no character with id {character.id} for this user")
        with self.store.transaction():
            self.quota.consume(user.id)
            return super().create(
                user_id=user.id,
                character_id=character.id,
                prompt=character.prompt if prompt is None else prompt,
            )

    def create(self, **fields: Any) -> Generation:
        """Same as :meth:`enqueue` (``user_id``, ``character_id``, optional ``prompt``)."""
        unknown = set(fields).difference({"user_id", "character_id", "prompt"})
        if unknown:
            raise ValidationError("is set by the queue and cannot be given", field=min(unknown))
        for required in ("user_id", "character_id"):
            if required not in fields:
                raise ValidationError("is required", field=required)
        return self.enqueue(**fields)

    def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Generation]:
        """Enqueue every row, all or none (each counts against its user's quota)."""
        rows = list(rows)
        with self.store.transaction():
            return [self.create(**dict(row)) for row in rows]

    def claim_next(self, worker: str) -> Generation | None:
        """Atomically take the oldest pending generation for ``worker`` (now ``running``).

        None when the queue is empty. Safe with any number of concurrent
        workers: each generation is claimed exactly once.
        """
        worker = check(self.spec.column("worker"), worker)
        for _ in range(CLAIM_ROUNDS):
            pending = self.find_many(
                where={"status": "pending"}, order_by="created_at", limit=CLAIM_BATCH
            )
            if not pending:
                return None
            for candidate in pending:
                claimed = _compare_and_set(
                    self,
                    "claim",
                    candidate.id,
                    {"status": "pending"},
                    {
                        "status": "running",
                        "worker": worker,
                        "started_at": self.context.clock(),
                        "attempts": Increment(1),
                    },
                )
                if claimed is not None:
                    return claimed
        return None

    def complete(self, id: str, result_url: str) -> Generation:
        """A running generation succeeded with the image at ``result_url``."""
        return self._move(
            id, "running", "succeeded", result_url=result_url, finished_at=self.context.clock()
        )

    def fail(self, id: str, error: str) -> Generation:
        """A running generation failed; ``error`` says why."""
        return self._move(id, "running", "failed", error=error, finished_at=self.context.clock())

    def retry(self, id: str) -> Generation:
        """Put a failed generation back in the queue (it does not count against the quota)."""
        return self._move(
            id, "failed", "pending", error=None, worker=None, started_at=None, finished_at=None
        )

    def _move(self, id: str, source: str, target: str, **changes: Any) -> Generation:
        id = check(self.spec.column("id"), id)
        moved = _compare_and_set(
            self, target, id, {"status": source}, {"status": target, **changes}
        )
        if moved is not None:
            return moved
        current = self.get(id)  # NotFound if there is no such generation
        raise InvalidTransition(
            f"generation {id} is {current.status}; only a {source} one can become {target}"
        )

    def counts_by_status(self, **where: Any) -> dict[str, int]:
        """How many generations match ``where`` in each status (every status present)."""
        counts = _count_by(self, "counts_by_status", where, "status")
        return {status: counts.get(status, 0) for status in GENERATION_STATUSES}


def erase_user_rows(store: Store, user_id: str) -> dict[str, int]:
    """Remove a user's generations, characters and usage rows for good; rows per table."""
    generations = store.generations
    removed = {
        "generations": _delete_where(generations, "erase_user", {"user_id": user_id}),
        "characters": _delete_where(store.characters, "erase_user", {"user_id": user_id}),
    }
    where = parse_where(USAGE, {"user_id": user_id})
    removed["generation_usage"] = store.gateway.delete(
        USAGE, where, action="generation_usage.erase_user"
    )
    return removed
