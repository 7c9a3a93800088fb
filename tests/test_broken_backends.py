"""The conformance kit catches deliberately broken backends.

Each broken backend is the memory backend with one meaning changed, served
under its own URL scheme by a plugin that a throwaway distribution registers
in the ``clonestore`` entry-point group (as a third party's would be). The
whole kit, unmodified, runs against each in a subprocess and must report
failures naming what is broken; the same plugin's unbroken memory backend
passes the same run.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

import clonestore.testing.contract

#: The plugin module: broken variants of MemoryBackend (they reach into its private
#: table and index classes, as only a test of the kit should).
BROKEN_BACKENDS = '''
import time
from contextlib import contextmanager

import numpy

import clonestore_memory
from clonestore import AlreadyExists, hookimpl
from clonestore_memory._indexes import UniqueIndex
from clonestore_memory._table import Table
from clonestore_peewee.sqlite._backend import SqliteBackend
from clonestore.query import TRUE, And, Cond, JsonCond, Or
from clonestore.spi_reference import apply_changes, matches


class NullsFirst(clonestore_memory.MemoryBackend):
    """Sorts NULLs first ascending (and last descending): the engine default of some."""

    name = "broken-nulls"

    def select(self, table, where, order=(), limit=None, offset=0):
        rows = super().select(table, where)
        for key in reversed(order):
            def sort_key(row, column=key.column):
                value = row[column]
                return (0,) if value is None else (1, value)
            rows.sort(key=sort_key, reverse=key.desc)
        end = None if limit is None else offset + limit
        return rows[offset:end]


def _case_blind(expr, row):
    if isinstance(expr, And):
        return all(_case_blind(e, row) for e in expr.items)
    if isinstance(expr, Or):
        return any(_case_blind(e, row) for e in expr.items)
    if isinstance(expr, Cond) and expr.op in ("eq", "contains") and isinstance(expr.value, str):
        actual = row[expr.column]
        if not isinstance(actual, str):
            return False
        if expr.op == "eq":
            return actual.lower() == expr.value.lower()
        return expr.value.lower() in actual.lower()
    return matches(expr, row)


class _FilteringTable(Table):
    """A table whose filters mean ``holds(where, row)`` instead of ``matches``."""

    holds = staticmethod(matches)

    def candidates(self, where):
        return list(self.rows.values())

    def matching(self, where):
        return [row for row in self.rows.values() if self.holds(where, row)]


class _CaseBlindTable(_FilteringTable):
    holds = staticmethod(_case_blind)


class _DeadRowsKeepKeysTable(Table):
    def __init__(self, spec):
        super().__init__(spec)
        for index in self.unique:
            index.soft_delete = False


class _WithTables(clonestore_memory.MemoryBackend):
    table_class = Table

    def create_tables(self, specs):
        with self._db.lock:
            for spec in specs:
                if spec.name not in self._db.tables:
                    self._db.tables[spec.name] = self.table_class(spec)


class CaseInsensitive(_WithTables):
    """Compares text case-insensitively (lower()) in eq and contains."""

    name = "broken-case"
    table_class = _CaseBlindTable


def _as_text(value):
    """What a SQL engine's text extraction of a JSON value (->>, JSON_UNQUOTE) gives: the
    type lost, null and a missing key both NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _typeless(expr, row):
    if isinstance(expr, And):
        return all(_typeless(e, row) for e in expr.items)
    if isinstance(expr, Or):
        return any(_typeless(e, row) for e in expr.items)
    if isinstance(expr, JsonCond) and expr.op in ("eq", "ne", "in", "not_in", "has_key"):
        found = row[expr.column]
        for key in expr.path:
            found = found.get(key) if isinstance(found, dict) else None
        text = _as_text(found)
        if expr.op == "has_key":
            return (text is not None) is expr.value
        if text is None:
            return False
        listed = expr.value if expr.op in ("in", "not_in") else (expr.value,)
        return (text in {_as_text(v) for v in listed}) is (expr.op in ("eq", "in"))
    return matches(expr, row)


class _TypelessJsonTable(_FilteringTable):
    holds = staticmethod(_typeless)


class TypelessJsonLookups(_WithTables):
    """JSON key lookups compare the keys' values as text (1 equals "1" and 1.0, true
    equals "true") and take a JSON null for a missing key."""

    name = "broken-json-typeless"
    table_class = _TypelessJsonTable


class DeadRowsKeepUniqueValues(_WithTables):
    """Soft-deleted rows still hold their unique values."""

    name = "broken-unique"
    table_class = _DeadRowsKeepKeysTable


class NoRollback(clonestore_memory.MemoryBackend):
    """transaction() commits each statement as it goes: nothing is rolled back."""

    name = "broken-rollback"

    @contextmanager
    def transaction(self):
        yield


class TiesByIdDescending(clonestore_memory.MemoryBackend):
    """vector search breaks ties between equal scores by id descending."""

    name = "broken-vector-ties"

    def nearest(self, table, where, column, query, metric, limit, cutoff=None, approximate=False):
        found = super().nearest(table, where, column, query, metric, 10**6, cutoff, approximate)
        found.sort(key=lambda item: item[0]["id"], reverse=True)
        found.sort(key=lambda item: item[1] if metric == "l2" else -item[1])
        return found[:limit]


def _dropping(expr, column):
    if isinstance(expr, (Cond, JsonCond)):
        return TRUE if expr.column == column else expr
    return type(expr)(tuple(_dropping(item, column) for item in expr.items))


class _VectorsIgnoring(clonestore_memory.MemoryBackend):
    ignored = ""

    def nearest(self, table, where, column, query, metric, limit, cutoff=None, approximate=False):
        return super().nearest(
            table, _dropping(where, self.ignored), column, query, metric, limit, cutoff,
            approximate,
        )


class DeletedVectorsFound(_VectorsIgnoring):
    """vector search ignores the live-rows condition: soft-deleted memories are found."""

    name = "broken-vector-deleted"
    ignored = "deleted_at"


class OtherOwnersVectorsFound(_VectorsIgnoring):
    """vector search ignores the owner condition: other users' memories are found."""

    name = "broken-vector-owner"
    ignored = "user_id"


class ZeroVectorsScored(clonestore_memory.MemoryBackend):
    """vector search returns NULL and zero vectors (score 0, as an engine's NaN may sort)."""

    name = "broken-vector-zero"

    def nearest(self, table, where, column, query, metric, limit, cutoff=None, approximate=False):
        found = super().nearest(table, where, column, query, metric, limit, cutoff, approximate)
        if metric != "cosine":
            return found
        t = self._table(table)
        zeros = [r for r in t.matching(where) if r[column] is None or not any(r[column])]
        found += [(t.copy_out(r), 0.0) for r in sorted(zeros, key=lambda r: r["id"])]
        found.sort(key=lambda item: -item[1])
        return found[:limit]


class _CollatingUniqueIndex(UniqueIndex):
    def key(self, row):
        key = super().key(row)
        if key is None:
            return None
        return tuple(v.casefold().rstrip(" ") if isinstance(v, str) else v for v in key)


class _CollatingTable(Table):
    def __init__(self, spec):
        super().__init__(spec)
        folded = {id(ix): _CollatingUniqueIndex(ix.unique, spec.soft_delete) for ix in self.unique}
        self.indexes = tuple(folded.get(id(ix), ix) for ix in self.indexes)
        self.unique = tuple(folded[id(ix)] for ix in self.unique)


class CollatingUnique(_WithTables):
    """Unique constraints compare keys case-blind and ignore trailing spaces (a _ci,
    PAD SPACE collation: MariaDB's default)."""

    name = "broken-unique-collation"
    table_class = _CollatingTable


def _keys_sorted(value):
    if isinstance(value, dict):
        return {k: _keys_sorted(value[k]) for k in sorted(value, key=lambda k: (len(k), k))}
    if isinstance(value, list):
        return [_keys_sorted(v) for v in value]
    return value


def _numbers_normalised(value):
    if isinstance(value, dict):
        return {k: _numbers_normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_normalised(v) for v in value]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _JsonTable(Table):
    normalise = staticmethod(lambda value: value)

    def copy_in(self, row):
        row = super().copy_in(row)
        for column in self.spec.columns:
            if column.kind == "json" and row.get(column.name) is not None:
                row[column.name] = self.normalise(row[column.name])
        return row


class _SortedJsonTable(_JsonTable):
    normalise = staticmethod(_keys_sorted)


class _NumberJsonTable(_JsonTable):
    normalise = staticmethod(_numbers_normalised)


class JsonKeysSorted(_WithTables):
    """JSON objects come back with their keys sorted (MySQL's JSON type)."""

    name = "broken-json-order"
    table_class = _SortedJsonTable


class JsonNumbersNormalised(_WithTables):
    """JSON 1.0 comes back as 1 and true as 1 (a JSON type keeping numbers, not types)."""

    name = "broken-json-numbers"
    table_class = _NumberJsonTable


class _HalfVectorTable(Table):
    def copy_in(self, row):
        row = super().copy_in(row)
        for column in self.spec.columns:
            if column.kind == "vector" and row.get(column.name) is not None:
                row[column.name] = [float(numpy.float16(x)) for x in row[column.name]]
        return row


class HalfPrecisionVectors(_WithTables):
    """Vectors stored in half precision (float16) instead of float32."""

    name = "broken-vector-half"
    table_class = _HalfVectorTable


def _only(row, returning):
    """The columns ``upsert(..., returning=...)`` asks for (capability upsert_returning)."""
    return row if returning is None else {name: row[name] for name in returning}


class _ReadThenWriteUpsert:
    """upsert() as a read, then an insert or a read-modify-write update: no atomic step."""

    def upsert(self, table, key, insert_row, changes, returning=None):
        return _only(self._racy_upsert(table, key, insert_row, changes), returning)

    def _racy_upsert(self, table, key, insert_row, changes):
        where = And(tuple(Cond(c, "eq", insert_row[c]) for c in key))
        if table.soft_delete:
            where = And((*where.items, Cond("deleted_at", "isnull", True)))
        found = self.select(table, where)
        time.sleep(0.005)  # what a round trip costs: another writer reads the same
        if not found:
            self.insert(table, insert_row)
            return insert_row
        new = apply_changes(found[0], changes)
        self.update(table, Cond("id", "eq", new["id"]), {c: new[c] for c in changes})
        return new


class RacyUpsert(_ReadThenWriteUpsert, clonestore_memory.MemoryBackend):
    """Upserts are not atomic: racing ones lose counts or fail."""

    name = "broken-upsert-race"


class RacyUpsertSqlite(_ReadThenWriteUpsert, SqliteBackend):
    """The same on a SQLite file, which processes share: racing processes lose counts."""

    def __init__(self, url, **options):
        super().__init__("sqlite" + url[len("broken-upsert-sqlite"):], **options)


class UpsertIgnoresScope(clonestore_memory.MemoryBackend):
    """upsert() finds the row by the key columns alone, ignoring ``when`` and deleted_at (a
    full unique index where a partial one is meant)."""

    name = "broken-upsert-scope"

    def upsert(self, table, key, insert_row, changes, returning=None):
        return _only(self._scopeless_upsert(table, key, insert_row, changes), returning)

    def _scopeless_upsert(self, table, key, insert_row, changes):
        where = And(tuple(Cond(c, "eq", insert_row[c]) for c in key))
        with self._db.atomic():
            found = sorted(self.select(table, where), key=lambda r: r["id"])
            if not found:
                self.insert(table, insert_row)
                return insert_row
            return self.update(table, Cond("id", "eq", found[0]["id"]), changes)[0]


class UpsertOnAnyKey(clonestore_memory.MemoryBackend):
    """An upsert whose insert clashes with any unique constraint updates the clashing row
    (MySQL's ON DUPLICATE KEY UPDATE)."""

    name = "broken-upsert-any-key"

    def upsert(self, table, key, insert_row, changes, returning=None):
        return _only(self._any_key_upsert(table, key, insert_row, changes), returning)

    def _any_key_upsert(self, table, key, insert_row, changes):
        with self._db.atomic():
            t = self._table(table)
            for index in t.unique:
                holder = index.holder(insert_row)
                if holder is not None:
                    return self.update(table, Cond("id", "eq", holder), changes)[0]
            self.insert(table, insert_row)
            return insert_row


def _put_unchecked(db, t, row):
    before = t.rows.get(row["id"])
    if before is not None:
        t.unlink(before)
    t.link(row)
    db.undo.append((t, row["id"], before))


class CheckThenWrite(clonestore_memory.MemoryBackend):
    """Unique constraints are checked before the write, outside the lock that makes the
    write atomic (a missing lock around a unique group)."""

    name = "broken-unique-race"

    def insert(self, table, row):
        t = self._table(table)
        if row["id"] in t.rows or t.conflicts(row) is not None:
            raise AlreadyExists("taken")
        time.sleep(0.001)
        with self._db.atomic():
            _put_unchecked(self._db, t, t.copy_in(row))

    def update(self, table, where, changes):
        t = self._table(table)
        new = [t.copy_in(apply_changes(r, changes)) for r in t.matching(where)]
        if any(t.conflicts(r) is not None for r in new):
            raise AlreadyExists("taken")
        time.sleep(0.001)
        with self._db.atomic():
            for r in new:
                _put_unchecked(self._db, t, r)
        return sorted((t.copy_out(r) for r in new), key=lambda r: r["id"])


class RacyUpdateAndInsert(clonestore_memory.MemoryBackend):
    """update_and_insert() reads the row, then writes its new values and the child: racing
    calls lose increments (and number two children alike)."""

    name = "broken-update-and-insert-race"

    def update_and_insert(self, table, where, changes, into, row, copied):
        found = self.select(table, where)
        if not found:
            return None
        time.sleep(0.002)  # what a round trip costs: another writer reads the same
        new = apply_changes(found[0], changes)
        inserted = {**row, **{column: new[source] for column, source in copied.items()}}
        with self._db.atomic():
            self.update(table, Cond("id", "eq", new["id"]), {c: new[c] for c in changes})
            self.insert(into, inserted)
        return inserted


class UpdateAndInsertApart(clonestore_memory.MemoryBackend):
    """update_and_insert() keeps the update when the insert fails: not all or nothing."""

    name = "broken-update-and-insert-apart"

    def update_and_insert(self, table, where, changes, into, row, copied):
        updated = self.update(table, where, changes)
        if not updated:
            return None
        inserted = {**row, **{column: updated[0][source] for column, source in copied.items()}}
        self.insert(into, inserted)
        return inserted


class ShortVectorsUndeclared(clonestore_memory.MemoryBackend):
    """keeps vectors of at most 4,096 items (as an engine's index might) without declaring
    it (capability vector_dimensions): a longer one is a BackendError, not a ValidationError."""

    name = "broken-vector-short"

    def _refuse_long(self, rows):
        from clonestore import BackendError

        for row in rows:
            if len(row.get("embedding") or ()) > 4096:
                raise BackendError("vector too long for the index", orig=None)

    def insert(self, table, row):
        self._refuse_long([row])
        return super().insert(table, row)

    def insert_many(self, table, rows):
        self._refuse_long(rows)
        return super().insert_many(table, rows)


class IdsOverwritten(clonestore_memory.MemoryBackend):
    """An insert with a taken id replaces the row (a key-value store's put)."""

    name = "broken-ids"

    def insert(self, table, row):
        t = self._table(table)
        with self._db.atomic():
            self._db.put(t, t.copy_in(row))


class UpsertByIdLiveOnly(clonestore_memory.MemoryBackend):
    """An upsert by id that sees live rows only, as a unique constraint would."""

    name = "broken-upsert-id"

    def upsert(self, table, key, insert_row, changes, returning=None):
        if tuple(key) == ("id",) and table.soft_delete:
            stored = self.get(table, insert_row["id"])
            if stored is not None and stored["deleted_at"] is not None:
                self.insert(table, insert_row)  # the id is taken: AlreadyExists
        return super().upsert(table, key, insert_row, changes, returning)


class UniqueColumnsUnnamed(clonestore_memory.MemoryBackend):
    """AlreadyExists names the violated constraint in its message only: no columns."""

    name = "broken-unique-columns"

    def _unnamed(self, write, *args):
        try:
            return write(*args)
        except AlreadyExists as exc:
            raise AlreadyExists(str(exc)) from None

    def insert(self, table, row):
        return self._unnamed(super().insert, table, row)

    def insert_many(self, table, rows):
        return self._unnamed(super().insert_many, table, rows)

    def update(self, table, where, changes):
        return self._unnamed(super().update, table, where, changes)

    def upsert(self, table, key, insert_row, changes, returning=None):
        return self._unnamed(super().upsert, table, key, insert_row, changes, returning)


class NoForeignKeys(clonestore_memory.MemoryBackend):
    """Foreign keys are not enforced: rows may point at nothing, and removing a session
    leaves its memories pointing at it (an engine without constraints, or SQLite without
    PRAGMA foreign_keys)."""

    name = "broken-foreign-keys"

    def _check_parents(self, table, rows, changes=None):
        pass

    def _release_children(self, table, removed):
        pass


class SelectColumnsInTableOrder(clonestore_memory.MemoryBackend):
    """select_columns gives the columns asked for in the table's order, not the caller's."""

    name = "broken-select-columns"

    def select_columns(self, table, columns, where, order=(), limit=None, offset=0):
        in_table_order = [c.name for c in table.columns if c.name in columns]
        return super().select_columns(table, in_table_order, where, order, limit, offset)


class BackupStub(clonestore_memory.MemoryBackend):
    """Has a backup method it cannot serve (a stub, as a shared base class might give
    every engine): implementing clonestore.spi.Backup declares the capability."""

    name = "broken-backup-stub"

    def backup(self, path):
        raise NotImplementedError("memory:// keeps no files to copy")


class Unbroken(clonestore_memory.MemoryBackend):
    """The memory backend itself, served by this same plugin: the control."""


@hookimpl
def clonestore_backends():
    return {
        "broken-nulls": NullsFirst,
        "broken-case": CaseInsensitive,
        "broken-unique": DeadRowsKeepUniqueValues,
        "broken-rollback": NoRollback,
        "broken-vector-ties": TiesByIdDescending,
        "broken-vector-deleted": DeletedVectorsFound,
        "broken-vector-owner": OtherOwnersVectorsFound,
        "broken-vector-zero": ZeroVectorsScored,
        "broken-unique-collation": CollatingUnique,
        "broken-json-order": JsonKeysSorted,
        "broken-json-numbers": JsonNumbersNormalised,
        "broken-json-typeless": TypelessJsonLookups,
        "broken-upsert-race": RacyUpsert,
        "broken-upsert-sqlite": RacyUpsertSqlite,
        "broken-upsert-scope": UpsertIgnoresScope,
        "broken-upsert-any-key": UpsertOnAnyKey,
        "broken-unique-race": CheckThenWrite,
        "broken-update-and-insert-race": RacyUpdateAndInsert,
        "broken-update-and-insert-apart": UpdateAndInsertApart,
        "broken-vector-half": HalfPrecisionVectors,
        "broken-vector-short": ShortVectorsUndeclared,
        "broken-ids": IdsOverwritten,
        "broken-upsert-id": UpsertByIdLiveOnly,
        "broken-unique-columns": UniqueColumnsUnnamed,
        "broken-foreign-keys": NoForeignKeys,
        "broken-select-columns": SelectColumnsInTableOrder,
        "broken-backup-stub": BackupStub,
        "unbroken": Unbroken,
    }
'''

#: Broken URL scheme -> tests of the kit that must fail on it (among others).
MUST_FAIL = {
    "broken-nulls": ["test_spi_nulls_last_ascending_first_descending"],
    "broken-case": ["test_spi_comparisons_follow_the_reference_meaning"],
    "broken-unique": ["test_spi_unique_holds_among_live_rows_only"],
    "broken-rollback": ["test_spi_transaction_rolls_back_on_error"],
}


#: Broken URL -> the kit's tests that must each fail on it, run on their own (selected with
#: -k, as a backend author would): the holes a third party's MariaDB backend slipped
#: through in the kit's first edition (the in-tree mariadb:// backend now passes the whole
#: kit in the matrix of tests/matrix.py), and vector search's (wrong ties, deleted rows,
#: other owners, zero vectors). ``{tmp}`` is the test's directory.
MUST_FAIL_ALONE = {
    "broken-unique-collation://": [
        "test_unique_keys_compare_code_point_for_code_point",
        "test_unique_text_compares_code_point_for_code_point",
        "test_upsert_keys_compare_code_point_for_code_point",
    ],
    "broken-json-order://": ["test_spi_json_round_trips_exactly"],
    "broken-json-numbers://": ["test_spi_json_round_trips_exactly"],
    "broken-json-typeless://": [
        "test_json_key_equality_keeps_json_types",
        "test_json_null_is_not_a_missing_key",
        "test_json_in_matches_any_listed_value_by_json_type",
    ],
    "broken-upsert-race://": [
        "test_upserts_racing_from_threads_all_count",
        "test_plugin_ratelimit_admits_exactly_the_limit_under_races",
    ],
    "broken-upsert-sqlite:///{tmp}/racy.db": [
        "test_upserts_racing_from_threads_all_count",
        "test_upserts_racing_from_processes_all_count",
    ],
    "broken-upsert-scope://": [
        "test_upsert_applies_changes_only_within_its_when_scope",
        "test_upsert_never_updates_a_soft_deleted_row",
    ],
    "broken-upsert-any-key://": ["test_upsert_clashing_with_another_constraint_changes_nothing"],
    "broken-rollback://": ["test_plugin_audit_chain_holds_exactly_the_committed_writes"],
    "broken-vector-half://": [
        "test_vectors_are_rounded_to_float32",
        "test_vectors_are_taken_in_every_float_form",
    ],
    "broken-vector-ties://": [
        "test_capability_vector_search_keeps_exact_results",
        "test_capability_vector_search_breaks_ties_by_id",
        "test_capability_vector_search_skips_null_and_other_dimensions",
    ],
    "broken-vector-deleted://": [
        "test_capability_vector_search_keeps_exact_results",
        "test_capability_vector_search_finds_live_rows_of_the_search_only",
    ],
    "broken-vector-owner://": [
        "test_capability_vector_search_keeps_exact_results",
        "test_capability_vector_search_finds_live_rows_of_the_search_only",
    ],
    "broken-vector-zero://": [
        "test_capability_vector_search_keeps_exact_results",
        "test_capability_vector_search_skips_null_and_other_dimensions",
    ],
    "broken-unique-race://": [
        "test_unique_holds_when_inserts_race",
        "test_partial_unique_holds_when_updates_race",
    ],
    "broken-update-and-insert-race://": [
        "test_capability_update_and_insert_counts_every_racing_call",
    ],
    "broken-ids://": ["test_a_taken_id_is_already_exists_naming_id"],
    "broken-upsert-id://": ["test_upsert_brings_a_soft_deleted_record_back_replaced"],
    "broken-update-and-insert-apart://": [
        "test_capability_update_and_insert_changes_both_or_neither",
    ],
    "broken-vector-short://": ["test_vectors_longer_than_the_store_keeps_are_refused"],
    "broken-foreign-keys://": [
        "test_insert_pointing_at_nothing_is_refused",
        "test_update_pointing_at_nothing_is_refused",
        "test_removing_a_referenced_row_is_refused",
        "test_removing_a_session_unlinks_its_memories",
    ],
    "broken-select-columns://": [
        "test_capability_select_columns_gives_selects_rows_a_column_each",
    ],
    "broken-backup-stub://": ["test_capability_backup_copies_every_row"],
    "broken-unique-columns://": [
        "test_already_exists_names_the_violated_columns",
        "test_already_exists_from_a_repository_names_the_fields",
    ],
}


@pytest.fixture
def broken_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """broken_backends.py and a distribution registering it, on the subprocess's path."""
    pytester.makepyfile(broken_backends=BROKEN_BACKENDS)
    dist = pytester.mkdir("broken_backends-0.dist-info")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-backends\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[clonestore]\nbroken = broken_backends\n")
    # Few examples and no shrinking: the run need only fail, not explain.
    pytester.makeconftest(
        """
        from hypothesis import Phase, settings

        settings.register_profile(
            "broken-backends", max_examples=20, deadline=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        )
        """
    )
    path = os.pathsep.join(filter(None, [str(pytester.path), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "broken-backends")


def _run_kit(
    pytester: pytest.Pytester, scheme: str, *args: str, modules: tuple[str, ...] = ()
) -> pytest.RunResult:
    """The kit (or only ``modules`` of it) on ``scheme``, in a pytest of its own."""
    url = scheme if ":" in scheme else f"{scheme}://"
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-rf", "--pyargs", *(modules or ["clonestore.testing"]),
        f"--clonestore-url={url}", *args,
    )  # fmt: skip


def _modules_of(tests: list[str]) -> list[str]:
    """The kit's contract modules defining ``tests``: a run collecting only them selects the
    same tests by name, without collecting the whole kit (~1 s of CPU a run)."""
    folder = Path(clonestore.testing.contract.__file__).parent
    sources = {path.stem: path.read_text(encoding="utf-8") for path in folder.glob("test_*.py")}
    modules = {
        name: stem
        for name in tests
        for stem, source in sources.items()
        if re.search(rf"^def {name}\(", source, re.M)
    }
    assert sorted(modules) == sorted(set(tests)), f"not in the kit: {set(tests) - set(modules)}"
    return sorted({f"clonestore.testing.contract.{stem}" for stem in modules.values()})


def _failed(result: pytest.RunResult) -> set[str]:
    return {line.split("::")[1].split(" ")[0].split("[")[0] for line in result.outlines
            if line.startswith("FAILED")}  # fmt: skip


@pytest.mark.parametrize("scheme", sorted(MUST_FAIL))
def test_kit_catches_a_broken_backend(
    pytester: pytest.Pytester, broken_plugin: None, scheme: str
) -> None:
    """The unmodified kit reports failures, including the named contract tests, on a backend
    with one meaning broken."""
    result = _run_kit(pytester, scheme)
    outcomes = result.parseoutcomes()
    output = result.stdout.str()
    assert outcomes.get("failed", 0) > 0, output[-3000:]
    failed = _failed(result)
    assert set(MUST_FAIL[scheme]) <= failed, textwrap.shorten(str(sorted(failed)), 2000)


@pytest.mark.parametrize("url", sorted(MUST_FAIL_ALONE))
def test_kit_test_fails_alone_on_a_broken_backend(
    pytester: pytest.Pytester, broken_plugin: None, url: str
) -> None:
    """Each of the kit's tests for a hole of its first edition fails, selected on its own by
    name, on a backend with that one meaning broken."""
    tests = MUST_FAIL_ALONE[url]
    result = _run_kit(
        pytester, url.format(tmp=pytester.path), "-k", " or ".join(tests),
        modules=tuple(_modules_of(tests)),
    )  # fmt: skip
    assert _failed(result) == set(tests), result.stdout.str()[-3000:]


def test_kit_failures_show_values_and_causes(
    pytester: pytest.Pytester, broken_plugin: None
) -> None:
    """A failing kit assertion shows the values it compared (pytest rewrites the kit's
    asserts) and names the likely cause."""
    named = "test_spi_json_round_trips_exactly"
    result = _run_kit(
        pytester, "broken-json-order", "-k", named, modules=tuple(_modules_of([named]))
    )
    output = result.stdout.str()
    assert re.search(r"^E +assert \('map', ", output, re.M), output[-3000:]
    result = _run_kit(pytester, "broken-unique-collation", "-k", "code_point")
    assert "collation folding case" in result.stdout.str(), result.stdout.str()[-3000:]
    named = "test_deleted_active_model_is_not_active_for"
    result = _run_kit(pytester, "broken-unique", "-k", named, modules=tuple(_modules_of([named])))
    assert "counts soft-deleted rows" in result.stdout.str(), result.stdout.str()[-3000:]


def test_the_same_plugin_unbroken_passes_the_kit(
    pytester: pytest.Pytester, broken_plugin: None
) -> None:
    """The memory backend served by the same plugin passes the same run: the failures above
    come from the breakage, not from the harness."""
    result = _run_kit(pytester, "unbroken")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()[-3000:]
    assert outcomes.get("errors", 0) == 0, result.stdout.str()[-3000:]
    assert outcomes["passed"] > 250
