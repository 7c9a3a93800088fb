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
import textwrap

import pytest

#: The plugin module: broken variants of MemoryBackend (they reach into its private
#: table and index classes, as only a test of the kit should).
BROKEN_BACKENDS = '''
from contextlib import contextmanager

import clonestore_memory
from clonestore import hookimpl
from clonestore_memory._table import Table
from clonestore.spi import TRUE, And, Cond, Or, matches


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


class _CaseBlindTable(Table):
    def candidates(self, where):
        return list(self.rows.values())

    def matching(self, where):
        return [row for row in self.rows.values() if _case_blind(where, row)]


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


def _alive_or_not(expr):
    if isinstance(expr, Cond):
        return TRUE if expr.column == "deleted_at" else expr
    return type(expr)(tuple(_alive_or_not(item) for item in expr.items))


class DeletedVectorsFound(clonestore_memory.MemoryBackend):
    """vector search ignores the live-rows condition: soft-deleted memories are found."""

    name = "broken-vector-deleted"

    def nearest(self, table, where, column, query, metric, limit, cutoff=None, approximate=False):
        return super().nearest(
            table, _alive_or_not(where), column, query, metric, limit, cutoff, approximate
        )


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
        "unbroken": Unbroken,
    }
'''

#: Broken URL scheme -> tests of the kit that must fail on it (among others).
MUST_FAIL = {
    "broken-nulls": ["test_spi_nulls_last_ascending_first_descending"],
    "broken-case": ["test_spi_comparisons_follow_the_reference_meaning"],
    "broken-unique": ["test_spi_unique_holds_among_live_rows_only"],
    "broken-rollback": ["test_spi_transaction_rolls_back_on_error"],
    "broken-vector-ties": ["test_capability_vector_search_keeps_exact_results"],
    "broken-vector-deleted": ["test_capability_vector_search_keeps_exact_results"],
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


def _run_kit(pytester: pytest.Pytester, scheme: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-rf", "--pyargs", "clonestore.testing",
        f"--clonestore-url={scheme}://",
    )  # fmt: skip


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
    failed = {line.split("::")[1].split(" ")[0] for line in result.outlines
              if line.startswith("FAILED")}  # fmt: skip
    assert set(MUST_FAIL[scheme]) <= failed, textwrap.shorten(str(sorted(failed)), 2000)


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
