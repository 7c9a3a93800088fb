"""The examples keep working: each is run the way its README says, in a subprocess.

Backends come from the one matrix, the ``clonestore_url`` fixture (memory,
SQLite and PostgreSQL under ``tests/matrix.py``); the jsonfile backend is
installed into a temporary directory, as a third party's package would be.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from clonestore.testing.plugin import StoreFactory
from tests.test_readme import NOT_IN_A_CLONE, environment, run_step, shell_steps

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PLATFORM = EXAMPLES / "character_platform"
JSONFILE = EXAMPLES / "jsonfile_backend"
TIMEOUT = 300


def _run(
    args: Sequence[str], *, cwd: Path = ROOT, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p
        )
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _pytest(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *args], pythonpath=pythonpath)


def _passed(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary, summary
    assert "failed" not in summary, summary
    assert "error" not in summary, summary
    return summary


def _empty_platform_tables(store_factory: StoreFactory) -> None:
    """Open (and so empty) the platform's tables on the URL under test."""
    sys.path.insert(0, str(PLATFORM))
    try:
        from character_platform import CharacterPlatform
    finally:
        sys.path.remove(str(PLATFORM))
    store_factory(plugins=[CharacterPlatform()]).close()


def test_character_platform_demo_runs_and_reruns(
    clonestore_url: str, store_factory: StoreFactory
) -> None:
    """demo.py prints its scenario on the backend under test, and a second run on the
    same store starts clean and prints the same."""
    _empty_platform_tables(store_factory)
    outputs = []
    for _ in range(2):
        done = _run([str(PLATFORM / "demo.py"), clonestore_url])
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    out = outputs[0]
    assert "users: Ada (free), Grace (pro)" in out
    assert "characters: 5 created, 4 public" in out
    assert "gallery text='CAPTAIN': Captain Bolt\n" in out
    assert "search 'huntress' (in a prompt): Nyx\n" in out
    assert "gallery tags all [hero, night]: Nyx\n" in out
    assert "gallery by name, page 2: Nyx, Sir Ada of Lovelace\n" in out
    assert "quota: Ada queued 5 generations, then refused: free tier allows 5" in out
    assert "worker gpu-1 finished 7 jobs" in out
    assert (
        "stats Grace: 2 characters (2 public), generations {'pending': 1, 'running': 0, "
        "'succeeded': 1, 'failed': 0}, quota 2/50 today"
    ) in out

    # The store's repr and the quota's reset time are the only lines that may change.
    def stable(output: str) -> list[str]:
        return [line for line in output.splitlines() if not line.startswith(("store:", "quota:"))]

    assert stable(outputs[1]) == stable(outputs[0])


def test_character_platform_tests_pass(clonestore_url: str) -> None:
    """The platform's own test suite passes on the backend under test."""
    _passed(_pytest(str(PLATFORM / "tests"), f"--clonestore-url={clonestore_url}"))


def test_asgi_app_tests_pass(clonestore_url: str) -> None:
    """The ASGI example's tests (open_async, httpx's ASGI transport) pass on the backend."""
    _passed(_pytest(str(EXAMPLES / "asgi_app"), f"--clonestore-url={clonestore_url}"))


def test_app_tests_pass_on_the_default_in_memory_store() -> None:
    """The application test suite passes with nothing but the clonestore_store fixture."""
    summary = _passed(_pytest(str(EXAMPLES / "app_tests")))
    assert summary.startswith("6 passed"), summary


@pytest.fixture(scope="module")
def jsonfile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clonestore-jsonfile installed with pip into a directory of its own (for PYTHONPATH)."""
    work = tmp_path_factory.mktemp("jsonfile")
    source = work / "source"
    shutil.copytree(
        JSONFILE,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*_cache"),
    )
    site = work / "site"
    install = ["-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
    # Offline first (needs setuptools and wheel here); else let pip fetch the build backend.
    done = _run([*install, "--no-build-isolation", str(source)], cwd=work)
    if done.returncode != 0:
        shutil.rmtree(site, ignore_errors=True)
        done = _run([*install, str(source)], cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    entry_points = next(site.glob("clonestore_jsonfile-*.dist-info")) / "entry_points.txt"
    assert "jsonfile = clonestore_jsonfile" in entry_points.read_text()
    return site


def test_jsonfile_backend_passes_the_conformance_kit(jsonfile_site: Path, tmp_path: Path) -> None:
    """The installed out-of-tree jsonfile:// backend passes the conformance kit unmodified:
    its contract with fsync (the backend's default), its properties without.

    Two runs of the kit's two packages (together what ``--pyargs clonestore.testing``
    collects): fsync changes no answer, and each commit of the properties' thousands of
    steps waited for the disk (33 s of 72 s, the same CPU), while the contract's commits
    cover the fsync path."""
    contract = f"jsonfile://{tmp_path / 'kit.json'}"
    properties = f"jsonfile://{tmp_path / 'properties.json'}?fsync=false"
    for package, url in (("contract", contract), ("properties", properties)):
        _passed(
            _pytest(
                "--pyargs", f"clonestore.testing.{package}", f"--clonestore-url={url}",
                pythonpath=jsonfile_site,
            )
        )  # fmt: skip
    assert (tmp_path / "kit.json").exists()


def test_jsonfile_backend_passes_the_contract_under_open_async(
    jsonfile_site: Path, tmp_path: Path
) -> None:
    """The kit's async mode as a third party runs it (``--clonestore-async``): the sync-only
    jsonfile:// backend passes the contract through open_async on worker threads; only the
    kit's SYNC_ONLY tests are skipped, each naming its reason."""
    # Without fsync, as the README runs the kit: the sync run above covers the fsync path,
    # which has no part in what open_async adds (saves an fsync per commit).
    url = f"jsonfile://{tmp_path / 'kit.json'}?fsync=false"
    done = _pytest(
        "--pyargs", "clonestore.testing.contract", f"--clonestore-url={url}",
        "--clonestore-async", "-rs", pythonpath=jsonfile_site,
    )  # fmt: skip
    _passed(done)
    from clonestore.testing.plugin import SYNC_ONLY

    skipped = re.findall(r"SKIPPED \[(\d+)\] .*not under --clonestore-async", done.stdout)
    assert sum(map(int, skipped)) == len(SYNC_ONLY), done.stdout[-3000:]


def test_jsonfile_backend_own_tests_pass(jsonfile_site: Path) -> None:
    """The jsonfile package's own tests (file format, atomic commits, locking) pass."""
    _passed(_pytest(str(JSONFILE / "tests"), pythonpath=jsonfile_site))


# ----------------------------------------------------------------------------- as documented


def documented_commands(readme: Path) -> list[str]:
    """The shell commands of a README's ``sh`` blocks, one per line, comments kept."""
    blocks = re.findall(r"^```sh\n(.*?)^```", readme.read_text(), flags=re.M | re.S)
    return [
        line for block in blocks for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout as a fresh clone has it (no venv, no databases)."""
    clone = tmp_path_factory.mktemp("clone") / "clonestore"
    shutil.copytree(ROOT, clone, symlinks=True, ignore=NOT_IN_A_CLONE)
    return clone


def _shell(
    command: str, cwd: Path, path_first: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    """``command`` exactly as written, by ``sh`` in ``cwd``, with ``path_first`` first on
    PATH (an activated environment: ``python`` and ``pip`` are its own) and ``variables``
    set."""
    done = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env={**environment(path_first), **variables},
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def command_1(fresh_clone: Path) -> Path:
    """README command 1 run, exactly as written, in the fresh clone: its ``.venv`` then
    holds clonestore as ``pip install .`` installs it, and nothing else. The venv's bin."""
    command_1 = documented_commands(ROOT / "README.md")[0]
    assert command_1.endswith("examples/quickstart.py"), command_1
    done = _shell(command_1, fresh_clone, Path(sys.executable).parent)
    assert "health:    ok=True backend=sqlite" in done.stdout
    # A plain install has no metrics extra: its plugin is silent until asked for.
    assert "cannot be loaded" not in done.stderr, done.stderr
    assert (fresh_clone / "clonestore.db").exists()
    return fresh_clone / ".venv" / "bin"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("example", ["app_tests", "character_platform", "asgi_app"])
def test_example_readme_commands_run_as_written(
    fresh_clone: Path, command_1: Path, example: str
) -> None:
    """Each command of the example's README runs, exactly as written, from the root of a
    fresh clone in the environment of README command 1 (activated), which the README's
    own first command completes (pip install 'clonestore[examples]'); pytest runs pass,
    without "Unknown config option" warnings; what a command serves answers."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (EXAMPLES / example / "README.md").read_text(),
                        flags=re.M | re.S)
    steps = [step for block in blocks for step in shell_steps(block)]
    assert steps[0].command == "pip install 'clonestore[examples]'", steps[0]
    assert len(steps) >= 3, steps
    for step in steps:
        for _ in range(2 if "run it twice" in step.command else 1):
            out = run_step(step, fresh_clone, command_1)
            if "pytest" in step.command:
                summary = out.strip().splitlines()[-1]
                assert " passed" in summary, out[-3000:]
                assert "failed" not in summary, out[-3000:]
                assert "Unknown config option" not in out, out[-3000:]


@pytest.mark.timeout(900)
def test_command_1_then_the_jsonfile_readme_as_written(fresh_clone: Path, command_1: Path) -> None:
    """README command 1 (a venv, pip install ., the quickstart on clonestore.db) works on a
    fresh clone; in that venv, every command of the jsonfile backend's README then runs as
    written: installing it, the conformance kit on jsonfile://, its own tests.

    With the kit's ``dev`` hypothesis profile, as a reader's machine runs them (50 random
    examples per property), also under CI: the ``ci`` profile's 300 derandomized examples
    are the same examples each run, which test_jsonfile_backend_passes_the_conformance_kit
    runs on the same backend (only ``fsync`` differs, which changes no answer; the
    contract's tests cover both settings), and repeating them here was about half of this
    test's time."""
    for command in documented_commands(JSONFILE / "README.md"):
        done = _shell(command, fresh_clone, command_1, HYPOTHESIS_PROFILE="dev")
        if "pytest" in command:
            _passed(done)
    assert (fresh_clone / "kit.json").exists()
