"""The conformance kit itself: complete, collected everywhere, runnable as shipped."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

import clonestore
import clonestore.testing.contract
import clonestore.testing.properties
from clonestore.spi import CAPABILITIES, capabilities_of
from clonestore.testing import FrozenClock, sequential_ids
from clonestore.testing.contract.test_capabilities import CAPABILITY_TESTS

ROOT = Path(__file__).resolve().parents[1]
#: Fixtures a contract test may take: what the kit's pytest plugin provides.
KIT_FIXTURES = {"store", "store_factory"}
#: What a differential property may take.
PROPERTY_FIXTURES = {"differential_stores", "audited_stores"}


def _contract_modules() -> dict[str, ModuleType]:
    package = clonestore.testing.contract
    names = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    return {name: importlib.import_module(f"{package.__name__}.{name}") for name in names}


def _property_modules() -> dict[str, ModuleType]:
    package = clonestore.testing.properties
    names = [m.name for m in pkgutil.iter_modules(package.__path__)]
    return {name: importlib.import_module(f"{package.__name__}.{name}") for name in names}


def _all_property_tests() -> list[tuple[str, object]]:
    return [
        (f"{module_name}.{test_name}", test)
        for module_name, module in _property_modules().items()
        for test_name, test in _tests_of(module).items()
    ]


def _tests_of(module: ModuleType) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(module).items()
        if name.startswith("test_")
        and inspect.isfunction(value)
        and value.__module__ == module.__name__
    }


def _all_contract_tests() -> list[tuple[str, object]]:
    return [
        (f"{module_name}.{test_name}", test)
        for module_name, module in _contract_modules().items()
        for test_name, test in _tests_of(module).items()
    ]


def test_module_list_matches_the_package():
    """contract.MODULES and properties.MODULES name exactly the modules of their package."""
    assert sorted(clonestore.testing.contract.MODULES) == sorted(_contract_modules())
    assert sorted(clonestore.testing.properties.MODULES) == sorted(_property_modules())


def _collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q", *args)
    return [line for line in result.outlines if "::" in line]


def test_kit_collects_each_test_under_its_module(pytester):
    """--pyargs clonestore.testing collects every contract test and differential property
    once, with an id naming its module (contract/test_users.py::test_...), so -k and paths select
    them module by module."""
    ids = _collected(pytester, "--pyargs", "clonestore.testing")
    expected = [f"contract/{q.replace('.', '.py::')}" for q, _ in _all_contract_tests()]
    expected += [f"properties/{q.replace('.', '.py::')}" for q, _ in _all_property_tests()]
    plain = sorted({i.split("[")[0] for i in ids})
    assert plain == sorted(expected)
    assert len(ids) == len(expected) + _parametrized_extra()
    users = _collected(pytester, "--pyargs", "clonestore.testing", "-k", "users.py")
    assert users
    assert all(i.startswith("contract/test_users.py::") for i in users)


def test_own_suite_collects_the_kit_where_it_lives():
    """clonestore's own suite collects the contract package in place (pyproject's
    testpaths), with no symlink or copy under tests/."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "clonestore/testing/contract" in pyproject["tool"]["pytest"]["ini_options"]["testpaths"]
    assert not (ROOT / "tests" / "contract").exists()
    assert not (ROOT / "tests" / "contract").is_symlink()


def test_own_suite_runs_each_contract_test_sync_and_async(pytester: pytest.Pytester) -> None:
    """In clonestore's own suite a contract test runs on each backend and again through
    open_async ([memory-async]); a SYNC_ONLY test's async runs are skipped with its reason."""
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-rs", "--rootdir", str(ROOT), "-c",
        str(ROOT / "pyproject.toml"),
        str(ROOT / "clonestore/testing/contract/test_models.py"),
        "-k", "test_activation_overtaken_midway_leaves_one_active and memory",
    )  # fmt: skip
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*not under --clonestore-async: hook races from a thread*"])
    ids = _collected(
        pytester, "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
        str(ROOT / "clonestore/testing/contract/test_users.py"), "-k", "memory",
    )  # fmt: skip
    sync = {i for i in ids if i.endswith("[memory]")}
    assert sync
    assert {i.replace("[memory]", "[memory-async]") for i in sync} <= set(ids)


def test_differential_properties_run_everywhere_unchanged():
    """tests/properties/ runs the kit's differential properties (the same functions, no
    copies) on three backends."""
    own = {}
    for path in Path(__file__).parent.joinpath("properties").glob("test_*.py"):
        spec = importlib.util.spec_from_file_location(f"_own_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        own.update({k: v for k, v in vars(module).items() if k.startswith("test_")})
    kit = dict(_all_property_tests())
    assert kit  # every property the kit defines, however many, not a hard-coded count
    assert [name for name, t in kit.items() if t not in own.values()] == []  # suite may add its own


def test_kit_assertions_are_rewritten():
    """pytest rewrites the kit's asserts, so a failing contract test shows its values."""
    for module in [*_contract_modules().values(), *_property_modules().values()]:
        assert type(module.__loader__).__name__ == "AssertionRewritingHook", module.__name__


def test_every_kit_module_is_named_as_a_test():
    """Every contract and property module is test_*.py, so pytest collects it as any test
    module (no collector of the kit's own)."""
    names = [*_contract_modules(), *_property_modules()]
    assert names
    assert [name for name in names if not name.startswith("test_")] == []


def test_contract_test_names_are_unique():
    """No two contract modules define a test of the same name, so a test's name alone
    (-k, a report) says which one it is."""
    seen: dict[str, str] = {}
    clashes = []
    for module_name, module in _contract_modules().items():
        for test_name in _tests_of(module):
            if test_name in seen:
                clashes.append((test_name, seen[test_name], module_name))
            seen[test_name] = module_name
    assert clashes == []


def test_contract_tests_have_one_line_docstrings():
    """Each contract test and differential property states its property in a one-line
    docstring."""
    bad = [
        name
        for name, test in _all_contract_tests() + _all_property_tests()
        if not test.__doc__ or "\n" in test.__doc__.strip() or not test.__doc__.strip()
    ]
    assert bad == []


def test_contract_tests_use_only_kit_fixtures():
    """Contract tests ask only for fixtures the kit's plugin provides (or their own
    parameters), so a third party can run them unmodified."""
    bad = []
    for name, test in _all_contract_tests():
        marks = getattr(test, "pytestmark", [])
        params = {
            arg.strip()
            for mark in marks
            if mark.name == "parametrize"
            for arg in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])
        }
        wanted = set(inspect.signature(test).parameters) - params
        if not wanted <= KIT_FIXTURES:
            bad.append((name, sorted(wanted - KIT_FIXTURES)))
    for name, test in _all_property_tests():
        wanted = set(inspect.signature(test).parameters)
        if not wanted <= PROPERTY_FIXTURES:
            bad.append((name, sorted(wanted - PROPERTY_FIXTURES)))
    assert bad == []


# ----------------------------------------------------------------------------- helpers


def test_frozen_clock_moves_only_when_told():
    """FrozenClock returns the same aware UTC instant until advanced."""
    clock = FrozenClock(datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert clock() == clock() == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert clock().utcoffset() == timedelta(0)
    assert clock.advance(1.5) == datetime(2024, 5, 1, 10, 0, 1, 500000, tzinfo=UTC)
    assert clock() == clock.now == datetime(2024, 5, 1, 10, 0, 1, 500000, tzinfo=UTC)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(datetime(2024, 1, 1))


def test_frozen_clock_with_a_step():
    """FrozenClock(step=s) hands out increasing instants s seconds apart."""
    clock = FrozenClock(datetime(2024, 1, 1, tzinfo=UTC), step=0.000001)
    first, second, third = clock(), clock(), clock()
    assert second - first == third - second == timedelta(microseconds=1)


def test_sequential_ids():
    """sequential_ids() gives valid, increasing UUID strings; each factory starts afresh."""
    make = sequential_ids()
    ids = [make() for _ in range(3)]
    assert ids == [f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3)]
    assert sequential_ids(255)() == "00000000-0000-4000-8000-0000000000ff"
    assert sorted(ids) == ids


# ----------------------------------------------------------------------------- the pytest plugin


def test_kit_runs_unmodified_against_a_url(pytester, monkeypatch):
    """python -m pytest --pyargs clonestore.testing --clonestore-url=memory:// passes every
    contract test and property, skipping only the capabilities memory does not declare."""
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "dev")  # the ci run is tests/properties/
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-rs", "--pyargs", "clonestore.testing",
        "--clonestore-url=memory://",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()[-3000:]
    assert outcomes.get("errors", 0) == 0, result.stdout.str()[-3000:]
    total = len(_all_contract_tests()) + _parametrized_extra() + len(_all_property_tests())
    skips = [line for line in result.outlines if line.startswith("SKIPPED")]
    named = {c for c in CAPABILITIES for line in skips if f"capability {c!r} not declared" in line}
    missing = CAPABILITIES - capabilities_of(clonestore.open("memory://").backend)
    assert named == missing, skips
    undeclared = sum(len(CAPABILITY_TESTS[c]) for c in missing)
    # ... the race between processes (memory:// lives inside one), and the two server-down
    # tests (memory:// has no server).
    assert sum("storage is not shared between processes" in line for line in skips) == 1
    assert sum("names no server host and port" in line for line in skips) == 1  # [2] on one line
    assert outcomes.get("skipped", 0) == undeclared + 3
    assert outcomes["passed"] == total - undeclared - 3


def test_kit_registers_hypothesis_profiles_for_third_parties(pytester, monkeypatch):
    """A suite running the kit's properties gets the kit's ci profile from
    --hypothesis-profile=ci or from CI, HYPOTHESIS_PROFILE beats both, and dev's example
    database lives under pytest's cache directory."""
    pytester.makepyfile(
        """
        import os

        from hypothesis import settings

        from clonestore.testing.profiles import load_default_profile

        def test_profile():
            expected = os.environ["EXPECTED_PROFILE"]
            assert load_default_profile() == expected
            assert settings.default.max_examples == {"ci": 300, "dev": 50}[expected]
            assert ".pytest_cache" in str(settings.get_profile("dev").database)
        """
    )
    for ci, chosen, option, expected in [
        (None, None, "--hypothesis-profile=ci", "ci"),
        ("true", None, None, "ci"),
        (None, None, None, "dev"),
        ("true", "dev", None, "dev"),
    ]:
        for name, value in {"CI": ci, "HYPOTHESIS_PROFILE": chosen}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("EXPECTED_PROFILE", expected)
        args = [option] if option else []
        pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)



def _parametrized_extra() -> int:
    """How many more test items than test functions parametrization makes."""
    extra = 0
    for _, test in _all_contract_tests():
        for mark in getattr(test, "pytestmark", []):
            if mark.name == "parametrize":
                extra += len(mark.args[1]) - 1
    return extra


def test_clonestore_store_for_application_suites(pytester):
    """An application suite gets a fresh memory:// store per test from clonestore_store."""
    pytester.makepyfile(
        """
        def test_first(clonestore_store, clonestore_url):
            assert clonestore_url == "memory://"
            assert clonestore_store.url == "memory://"
            clonestore_store.users.create(email="a@example.com", name="A")
            assert clonestore_store.users.count() == 1

        def test_second(clonestore_store):
            assert clonestore_store.users.count() == 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_clonestore_url_option_and_ini(pytester, monkeypatch):
    """--clonestore-url beats the clonestore_url ini value, which beats memory://."""
    pytester.makeini("[pytest]\nclonestore_url = memory://from-ini\n")
    pytester.makepyfile(
        """
        import os

        def test_url(clonestore_url):
            assert clonestore_url == os.environ["EXPECTED_URL"]
        """
    )
    monkeypatch.setenv("EXPECTED_URL", "memory://from-ini")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setenv("EXPECTED_URL", "memory://from-option")
    result = pytester.runpytest("-p", "no:cacheprovider", "--clonestore-url=memory://from-option")
    result.assert_outcomes(passed=1)


def test_clonestore_plugins_fixture_enables_plugins(pytester):
    """Overriding clonestore_plugins gives clonestore_store those plugins."""
    pytester.makeconftest(
        """
        import pytest
        import clonestore

        class Counter:
            writes = 0

            @clonestore.hookimpl
            def clonestore_before_write(self, store, op):
                Counter.writes += 1

        @pytest.fixture
        def clonestore_plugins():
            return [Counter()]
        """
    )
    pytester.makepyfile(
        """
        from conftest import Counter

        def test_plugin_sees_writes(clonestore_store):
            clonestore_store.users.create(email="a@example.com", name="A")
            assert Counter.writes == 1
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_store_factory_starts_each_test_clean_and_closes_stores(pytester):
    """On a shared database, each test's first store starts empty, later stores of the same
    test keep what it wrote, and every store is closed after the test."""
    pytester.makepyfile(
        """
        opened = []

        def test_writes(store_factory):
            store = store_factory()
            opened.append(store)
            store.users.create(email="a@example.com", name="A")
            assert store_factory().users.count() == 1

        def test_starts_clean(store):
            assert opened[0].closed
            assert store.users.count() == 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--clonestore-url=memory://kit-shared")
    result.assert_outcomes(passed=2)
