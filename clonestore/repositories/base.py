"""The generic repository, written once over the SPI for every entity."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Self, TypeAlias, TypeVar, cast

import attrs

from clonestore._collection import collection_paused
from clonestore._gateway import Gateway
from clonestore._unit_of_work import UnitOfWork
from clonestore.errors import AlreadyExists, Conflict, NotFound, ValidationError
from clonestore.query import (
    TRUE,
    Cond,
    Expr,
    Lookup,
    OrderBy,
    conjoin,
    decode_cursor,
    encode_cursor,
    keyset_after,
    parse_order,
    parse_where,
)
from clonestore.repositories._mapping import RecordMapping
from clonestore.schema import INT64_MAX, TableSpec
from clonestore.spi import PRIMARY_KEY, Increment, Row
from clonestore.text import parse_query

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_SEARCH_LIMIT",
    "Clock",
    "Page",
    "Repository",
    "RepositoryContext",
    "Scored",
    "check_rows",
]

R = TypeVar("R")
MAX_PAGE_SIZE = 1000
#: The most results one ``search`` or ``recall`` returns.
MAX_SEARCH_LIMIT = 1000

#: Returns the current time, timezone-aware UTC (``clonestore.open(clock=...)``).
Clock: TypeAlias = Callable[[], datetime]


@attrs.frozen(kw_only=True)
class RepositoryContext:
    """What a repository needs of its store, and nothing more (``store.repository_context``).

    A plugin building a repository of its own passes the store's context:
    ``CharacterRepository(store.repository_context, CHARACTERS)``.
    """

    #: The choke point every read and write passes (plugins see them there).
    gateway: Gateway
    #: The store's transactions (``unit.atomic()`` around a multi-call operation).
    unit: UnitOfWork
    #: The store's clock, for timestamps.
    clock: Clock
    #: The store's id factory, for new rows.
    id_factory: Callable[[], str]
    #: Every table of the store (domain and plugin tables) by name.
    tables: Mapping[str, TableSpec]
    #: The repositories a repository finds its siblings among (``"users"``...), by
    #: table name: the store's, or a user's view's (see :mod:`clonestore._tenancy`).
    repositories: dict[str, Repository[Any]] = attrs.field(factory=dict, eq=False)


@attrs.frozen
class Page(Generic[R]):
    """One keyset page: ``items``, and ``next_cursor`` (None on the last page)."""

    items: list[R]
    next_cursor: str | None


@attrs.frozen
class Scored(Generic[R]):
    """A record found by ``search`` or ``recall`` and its ``score`` (BM25 for a search,
    the fused reciprocal-rank score for a recall): higher is better."""

    record: R
    score: float


def _bad_int(name: str, value: Any, low: int, high: int | None = None) -> ValidationError | None:
    if type(value) is not int or value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f">= {low}"
        return ValidationError(f"must be an integer {limit}, got {value!r}", field=name)
    return None


class Repository(Generic[R]):
    """Reads and writes one entity's rows. Subclasses add domain operations.

    Records are validated when built; rows are what the backend stores (the
    record's fields plus derived columns such as ``email_key``).
    """

    #: Singular name used in actions (``"user"`` -> ``"user.create"``).
    noun: str = "row"
    #: The column naming a row's owning user (``id`` on users).
    owner_column: str = "user_id"
    #: The owning user this repository is limited to (see :mod:`clonestore._tenancy`).
    owner: str | None = None
    #: The text and list columns ``search`` matches (none: the table is not searched).
    search_fields: tuple[str, ...] = ()

    def __init__(self, context: RepositoryContext, spec: TableSpec) -> None:
        if spec.record is None:
            raise TypeError(f"table {spec.name} has no record class")
        self.context = context
        self.spec = spec
        self.record: type[R] = spec.record
        self._gateway = context.gateway
        self._unit = context.unit
        self._clock = context.clock
        mapping: RecordMapping[R] = RecordMapping(spec)
        self._mapping = mapping
        self._load = mapping.load
        self._row = mapping.row
        self._check_id = mapping.check_id
        self._changes = mapping.changes
        self._live: Expr = Cond("deleted_at", "isnull", True) if spec.soft_delete else TRUE
        self._scope: Expr = TRUE
        #: Creation order (``created_at``, ``id``), the default ordering.
        self._creation_order = parse_order(spec, None)
        self._lookups: dict[tuple[str, ...], Lookup] = {}
        #: Writes by id name the owner too (capability ``owner_routed``; users are their
        #: own owners, so their ids route already).
        self._routed = (
            "owner_routed" in context.gateway.capabilities and self.owner_column != "id"
        )

    @property
    def repos(self) -> Mapping[str, Repository[Any]]:
        """Where sibling repositories are found (``self.repos["users"]``)."""
        return self.context.repositories

    def scoped(
        self,
        owner: str,
        repositories: dict[str, Repository[Any]],
        gateway: Gateway | None = None,
    ) -> Self:
        """A copy limited to the rows of user ``owner``, finding siblings in ``repositories``
        and, when given, calling the backend through ``gateway`` (the store's gateway acting
        as ``owner``, on a backend with capability ``row_security``)."""
        clone = copy.copy(self)
        clone.owner = owner
        if gateway is None:
            clone.context = attrs.evolve(self.context, repositories=repositories)
        else:
            clone.context = attrs.evolve(self.context, repositories=repositories,
                                         gateway=gateway)  # fmt: skip
            clone._gateway = gateway
        clone._scope = Cond(self.owner_column, "eq", owner)
        clone._lookups = {}
        return clone

    # ------------------------------------------------------------------ extension surface
    # What an application's own repository (a subclass, or helpers over one) may use
    # besides ``context`` and ``spec``: docs/records.md, "Going below the repository".

    def where(
        self, lookups: Mapping[str, Any] | None = None, *, with_deleted: bool = False
    ) -> Expr:
        """Keyword lookups (as ``find_many`` takes them) as an SPI expression, limited to
        this repository's view (a user's rows under ``store.for_user``) and, unless
        ``with_deleted``, to live rows of a soft-deleting table."""
        return self._where(lookups, with_deleted)

    def load(self, row: Mapping[str, Any]) -> R:
        """The record of a stored row (derived columns such as ``email_key`` left out)."""
        _require_mapping("load", "a stored row", row)
        try:
            return self._load(row)
        except KeyError as exc:
            raise ValidationError(f"load: the row has no column {exc.args[0]!r}") from None

    def stamp(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``changes`` plus the bookkeeping every update makes (``updated_at`` now,
        ``version`` incremented), for an update of your own through the SPI."""
        _require_mapping("stamp", "the changes", changes)
        return self._stamp(dict(changes))

    # ------------------------------------------------------------------ building records

    #: Fields set by clonestore that ``create`` accepts when given their initial
    #: value (a session's ``state="idle"``), as the original API passed them.
    initial_values: Mapping[str, tuple[Any, str]] = {}

    def _build(self, fields: Mapping[str, Any], **system: Any) -> R:
        """A new, valid record from caller fields, with system fields filled in
        (``system`` sets fields only the core may set)."""
        if self.owner is not None and self.owner_column == "id":
            raise ValidationError(f"a user's view cannot create {self.spec.name}")
        for name, (initial, how) in self.initial_values.items():
            if name in fields:
                if fields[name] != initial:
                    raise ValidationError(
                        f"a new {self.noun} starts {initial!r}; {how}", field=name
                    )
                fields = {k: v for k, v in fields.items() if k != name}
        return self._mapping.new_record(
            fields, system, clock=self._clock, id_factory=self.context.id_factory
        )

    def _stamp(self, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes`` plus the bookkeeping every update makes."""
        changes["updated_at"] = self._clock()
        changes["version"] = Increment(1)
        return changes

    def _where(self, where: Mapping[str, Any] | None, with_deleted: bool = False) -> Expr:
        if where is not None and not isinstance(where, Mapping):
            raise ValidationError(f"where must be a mapping, got {type(where).__name__}")
        expr = conjoin(self._scope, parse_where(self.spec, where))
        return expr if with_deleted else conjoin(self._live, expr)

    def _lookup(self, *names: str) -> Lookup:
        """The where-clause of live rows (in this view) with ``name=value`` for ``names``,
        built on first use (see :class:`~clonestore.query.Lookup`): what
        ``_where({name: value...})`` gives, without parsing the lookups every call."""
        lookup = self._lookups.get(names)
        if lookup is None:
            lookup = Lookup(self.spec, names, (self._live, self._scope))
            self._lookups[names] = lookup
        return lookup

    def _by_id(self, id: str, *, live: bool = True, owner: str | None = None) -> Expr:
        """The row with this id (live unless ``live`` is false), in this view; with
        capability ``owner_routed``, naming its owner (``owner`` when the caller read the
        row, else looked up once)."""
        return conjoin(
            Cond("id", "eq", id), self._owned(id, owner), self._live if live else TRUE
        )

    def _owned(self, id: str, owner: str | None = None) -> Expr:
        """This view's scope; with capability ``owner_routed``, ``owner_column = owner``
        (``owner`` given, or the stored row's, read once; a missing row names none)."""
        if not self._routed or self.owner is not None:
            return self._scope
        if owner is None:
            row = self._gateway.backend.get(self.spec, id)
            if row is None:
                return self._scope
            owner = row[self.owner_column]
        return Cond(self.owner_column, "eq", owner)

    # ------------------------------------------------------------- SPI calls through the gateway

    def _select(
        self,
        verb: str,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        return self._gateway.select(
            self.spec, where, order, limit, offset, action=f"{self.noun}.{verb}"
        )

    def _select_columns(
        self,
        verb: str,
        where: Expr,
        order: Sequence[OrderBy],
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[tuple[str, ...], list[Sequence[Any]]]:
        """``_select``'s rows a column each (capability ``select_columns``): the record's
        fields (what :attr:`RecordMapping.load_columns` takes), then any other ``order``
        column; the names and the columns."""
        fields = self._mapping.fields
        names = fields + tuple(dict.fromkeys(o.column for o in order if o.column not in fields))
        columns = self._gateway.select_columns(
            self.spec, names, where, order, limit, offset, action=f"{self.noun}.{verb}"
        )
        return names, columns

    def _get_row(self, id: str) -> Row | None:
        row = self._gateway.get(self.spec, id, action=f"{self.noun}.get")
        if row is not None and self.owner is not None and row[self.owner_column] != self.owner:
            return None  # another user's row does not exist for this view
        return row

    def _live_row(self, id: Any) -> Row:
        id = self._check_id(id)
        row = self._get_row(id)
        if row is None or (self.spec.soft_delete and row["deleted_at"] is not None):
            raise NotFound(f"no {self.noun} with id {id}")
        return row

    def _unique_error(self, exc: AlreadyExists) -> AlreadyExists:
        """``exc`` naming the fields a caller knows (``email``, not ``email_key``; ``id``
        when a row already has the id): the columns the backend reported."""
        table = self.spec.name
        if exc.columns == ("id",):
            return AlreadyExists(
                f"{table}: id already used by another {self.noun}", columns=("id",), orig=exc.orig
            )
        for unique in self.spec.unique:
            if unique.columns == exc.columns:
                fields = [self.spec.by_name[c].derived_from or c for c in unique.columns]
                live = " live" if self.spec.soft_delete else ""
                return AlreadyExists(
                    f"{table}: {', '.join(fields)} already used by another{live} {self.noun}",
                    columns=fields,
                    orig=exc.orig,
                )
        return exc

    def _insert(self, verb: str, row: Row) -> None:
        self._gateway.insert(
            self.spec, row, action=f"{self.noun}.{verb}", explain_conflict=self._unique_error
        )

    def _update(
        self, verb: str, where: Expr, changes: Mapping[str, Any], key: str | None = None
    ) -> list[Row]:
        return self._gateway.update(
            self.spec,
            where,
            changes,
            action=f"{self.noun}.{verb}",
            key=key,
            explain_conflict=self._unique_error,
        )

    def _delete(self, verb: str, where: Expr, key: str | None = None) -> int:
        return self._gateway.delete(self.spec, where, action=f"{self.noun}.{verb}", key=key)

    # ------------------------------------------------------------------ reads

    def get(self, id: str) -> R:
        """The live record with this id; :class:`NotFound` otherwise."""
        return self._load(self._live_row(id))

    def get_or_none(self, id: str) -> R | None:
        """The live record with this id, or None."""
        try:
            return self.get(id)
        except NotFound:
            return None

    def find_one(self, **where: Any) -> R | None:
        """The first live record (in creation order) matching the lookups, or None."""
        rows = self._select("find_one", self._where(where), self._creation_order, limit=1)
        return self._load(rows[0]) if rows else None

    def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[R]:
        """Records matching ``where`` and keyword ``lookups`` (as ``find_one`` takes them),
        ordered (``"-created_at"``; ties by id), sliced.

        ``limit`` and ``offset`` are integers from 0 to 2**63 - 1 on every backend.
        """
        if limit is not None and (error := _bad_int("limit", limit, 0, INT64_MAX)):
            raise error
        if error := _bad_int("offset", offset, 0, INT64_MAX):
            raise error
        _, columns = self._select_columns(
            "find_many",
            self._where(_merge_lookups(where, lookups), with_deleted),
            parse_order(self.spec, order_by),
            limit,
            offset,
        )
        return self._mapping.load_columns(columns, len(columns[0]))

    def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[R]:
        """One keyset page; pass ``next_cursor`` back to continue after it."""
        if error := _bad_int("size", size, 1, MAX_PAGE_SIZE):
            raise error
        order = self._creation_order if order_by is None else parse_order(self.spec, order_by)
        expr = self._where(where, with_deleted)
        if cursor is not None:
            if not isinstance(cursor, str):
                raise ValidationError("must be a string from Page.next_cursor", field="cursor")
            expr = conjoin(
                expr, keyset_after(order, decode_cursor(self.spec, order, cursor), self.spec)
            )
        names, columns = self._select_columns("page", expr, order, size + 1)
        found = len(columns[0])
        next_cursor = None
        if found > size:  # the last row is the next page's first: continue after the one before
            last = {o.column: columns[names.index(o.column)][size - 1] for o in order}
            next_cursor = encode_cursor(order, last)
        return Page(self._mapping.load_columns(columns, min(found, size)), next_cursor)

    def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int:
        """How many records match ``where`` and keyword ``lookups``."""
        return self._gateway.count(
            self.spec,
            self._where(_merge_lookups(where, lookups), with_deleted),
            action=f"{self.noun}.count",
        )

    def exists(self, **where: Any) -> bool:
        """Whether any live record matches the lookups."""
        return bool(self._select("exists", self._where(where), (), limit=1))

    # ------------------------------------------------------------------ writes

    #: Whether rows point at other rows that must exist (see ``_check_references``).
    has_references = False

    def search(
        self, text: str, *, limit: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[Scored[R]]:
        """The live records matching ``where`` whose :attr:`search_fields` hold every word
        and quoted phrase of ``text``, best first by BM25, ties by id; at most ``limit``.

        The same records in the same order, with the same scores, on every backend: the
        tokenizer, the match set and the BM25 statistics (those of the rows matching
        ``where``, in this view) are :mod:`clonestore.text`'s.
        """
        query = parse_query(text)
        if error := _bad_int("limit", limit, 0, MAX_SEARCH_LIMIT):
            raise error
        expr = self._where(where)
        if not self.search_fields:
            raise ValidationError(f"{self.spec.name} has no searchable fields", field="text")
        if limit == 0:
            return []
        found = self._gateway.text_search(
            self.spec, expr, self.search_fields, query, limit, action=f"{self.noun}.search"
        )
        return [Scored(self._load(row), value) for row, value in found]

    def _check_references(self, rows: Sequence[Row]) -> None:
        """Refuse rows that point at missing owners (overridden by entities that have them)."""

    def create(self, **fields: Any) -> R:
        """Validate and store a new record; returns it with its id and timestamps."""
        rec = self._build(fields)
        row = self._row(rec)
        if not self.has_references:
            self._insert("create", row)
            return rec
        with self._unit.atomic():
            self._check_references([row])
            self._insert("create", row)
        return rec

    def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[R]:
        """Validate every row, then store them all or none."""
        with collection_paused():  # bulk work makes no cyclic garbage
            return self._create_many(rows)

    def _create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[R]:
        records: list[R] = []
        for i, fields in enumerate(check_rows(rows)):
            try:
                records.append(self._build(fields))
            except ValidationError as exc:
                raise ValidationError(f"row {i}: {exc}", field=exc.field) from None
        if not records:
            return []
        stored = [self._row(r) for r in records]
        with self._unit.atomic():
            self._check_references(stored)
            self._gateway.insert_many(
                self.spec,
                stored,
                action=f"{self.noun}.create_many",
                explain_conflict=self._unique_error,
            )
        return records

    def upsert(self, id: str, /, **fields: Any) -> tuple[R, bool]:
        """Create the record with this id, or replace the one that has it, in one atomic
        step; returns the record and whether it was created.

        ``fields`` are what ``create`` takes (without ``id``). A replaced record gets
        every one of them, and the default of each field not given, as ``create``
        would; it keeps its id, ``created_at`` (unless given) and what only domain
        operations change (a model's ``is_active``, a session's state and totals, a
        document's status...), its ``version`` goes up by one and ``updated_at`` is
        now (unless given). A soft-deleted record with the id is replaced the same
        way and is live again. Plugins see one write, action ``<noun>.upsert``.

        :raises AlreadyExists: the new values clash with another live record's unique
            values, or the id belongs to another user's record; nothing changes.
        :raises ValidationError: invalid fields, as for ``create``; nothing changes.
        """
        if "id" in fields:
            raise ValidationError("is upsert's first argument, not a field", field="id")
        id = self._check_id(id)
        row = self._row(self._build({**fields, "id": id}))
        changes = self._mapping.replacement(row, fields)
        owner = self.owner_column
        changes.pop(owner, None)  # a record never changes hands: checked below instead
        with self._unit.atomic():
            self._check_references([row])
            stored = self._gateway.upsert(
                self.spec,
                PRIMARY_KEY,
                row,
                changes,
                action=f"{self.noun}.upsert",
                key=id,
                explain_conflict=self._unique_error,
            )
            if stored[owner] != row[owner]:  # rolled back with the transaction
                raise AlreadyExists(f"{self.spec.name}: id already used by another user's row")
        return self._load(stored), stored["version"] == 1

    def update(self, id: str, /, expected_version: int | None = None, **changes: Any) -> R:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`.
        """
        id = self._check_id(id)
        if expected_version is not None and (
            error := _bad_int("expected_version", expected_version, 1)
        ):
            raise error
        values = self._changes(changes)
        if not values:
            rec = self.get(id)
            version = cast(Any, rec).version
            if expected_version is not None and version != expected_version:
                raise Conflict(f"{self.noun} {id} is at version {version}, not {expected_version}")
            return rec
        where = self._by_id(id)
        if expected_version is not None:
            where = conjoin(where, Cond("version", "eq", expected_version))
        rows = self._update("update", where, self._stamp(values), key=id)
        if rows:
            return self._load(rows[0])
        current = self._live_row(id)  # NotFound if it is gone
        raise Conflict(
            f"{self.noun} {id} is at version {current['version']}, not {expected_version}"
        )

    def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int:
        """Apply the same changes to every live record matching ``where``; how many changed.

        An empty ``where`` (None or ``{}``) would change every row: it is refused
        unless ``all=True`` says so.
        """
        expr = self._where(where)
        values = self._changes(changes)
        if not values:
            raise ValidationError("update_many needs at least one change")
        if type(all) is not bool:
            raise ValidationError(f"must be True or False, got {all!r}", field="all")
        if not where and not all:
            raise ValidationError(
                "update_many needs a filter; pass all=True to change every row", field="where"
            )
        return len(self._update("update_many", expr, self._stamp(values)))

    def delete(self, id: str) -> None:
        """Soft-delete (hide) the record where the entity supports it; else remove it."""
        id = self._check_id(id)
        if not self.spec.soft_delete:
            self.hard_delete(id)
            return
        changes = self._stamp({"deleted_at": self._clock()})
        if not self._update("delete", self._by_id(id), changes, key=id):
            raise NotFound(f"no {self.noun} with id {id}")

    def restore(self, id: str) -> R:
        """Bring back a soft-deleted record; :class:`AlreadyExists` if its unique
        values were taken meanwhile."""
        id = self._check_id(id)
        if not self.spec.soft_delete:
            raise ValidationError(f"{self.spec.name} are removed for good; nothing to restore")
        with self._unit.atomic():
            row = self._get_row(id)
            if row is None or row["deleted_at"] is None:
                raise NotFound(f"no deleted {self.noun} with id {id}")
            self._check_references([row])
            changes = self._stamp({"deleted_at": None})
            if "deleted_by_cascade" in self.spec.by_name:
                changes["deleted_by_cascade"] = None
            where = conjoin(
                Cond("id", "eq", id),
                self._owned(id, row[self.owner_column]),
                Cond("deleted_at", "isnull", False),
            )
            rows = self._update("restore", where, changes, key=id)
        if not rows:
            raise NotFound(f"no deleted {self.noun} with id {id}")
        return self._load(rows[0])

    def hard_delete(self, id: str) -> None:
        """Remove the record for good, deleted or not."""
        id = self._check_id(id)
        if not self._delete("hard_delete", conjoin(Cond("id", "eq", id), self._owned(id)), key=id):
            raise NotFound(f"no {self.noun} with id {id}")


def _merge_lookups(
    where: Mapping[str, Any] | None, lookups: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """``where`` and keyword lookups as one mapping; a lookup given twice is refused."""
    if not lookups:
        return where
    if where is None:
        return lookups
    if not isinstance(where, Mapping):
        raise ValidationError(f"where must be a mapping, got {type(where).__name__}")
    twice = sorted(set(where) & set(lookups))
    if twice:
        raise ValidationError("given both in where and as a keyword", field=twice[0])
    return {**where, **lookups}


def check_rows(rows: Any) -> list[Mapping[str, Any]]:
    """``create_many``'s argument as a list of mappings of field names, or ValidationError."""
    if isinstance(rows, (Mapping, str, bytes)) or not isinstance(rows, Iterable):
        raise ValidationError("create_many takes an iterable of mappings")
    out = list(rows)
    for i, fields in enumerate(out):
        if not isinstance(fields, Mapping):
            raise ValidationError(f"row {i} is {type(fields).__name__}, not a mapping")
        if not all(isinstance(name, str) for name in fields):
            raise ValidationError(f"row {i}: field names must be strings")
    return out


def _require_mapping(method: str, what: str, value: object) -> None:
    """The extension surface's methods take mappings; anything else is a ValidationError."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{method} takes {what} as a mapping of column names to values, "
                              f"got {type(value).__name__}")
