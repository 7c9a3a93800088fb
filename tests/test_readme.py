"""The README tells the truth: its field reference is generated from the table specs
(this test prints the text to paste when they drift), and every recipe of the README
and docs/ runs exactly as printed."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import attrs
import pytest

from clonestore.records import TABLES
from clonestore.repositories._mapping import RecordMapping
from clonestore.schema import Column

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- fields:start -->", "<!-- fields:end -->"


def _notes(col: Column, field: attrs.Attribute[object], required: frozenset[str]) -> str:
    notes = []
    if col.settable == "no":
        notes.append("set by clonestore")
    elif col.settable == "create":
        notes.append("set at create only")
    if field.name in required:
        notes.append("required")
    elif col.name == "id":
        notes.append("a new UUID if not given")
    elif field.default is attrs.NOTHING and col.kind == "datetime" and col.settable == "create":
        notes.append("now if not given" if col.name != "updated_at" else "created_at if not given")
    elif col.nullable:
        notes.append("optional")
    elif not isinstance(field.default, attrs.Factory) and col.settable != "no":
        notes.append(f"default `{field.default}`")
    if col.choices:
        notes.append("one of " + ", ".join(f"`{c}`" for c in col.choices))
    if col.kind in ("text", "list", "vector") and col.max_length is not None:
        unit = "characters" if col.kind == "text" else "items"
        notes.append(f"at most {col.max_length:,} {unit}")
    if col.minimum is not None and col.maximum is not None:
        notes.append(f"from {col.minimum} to {col.maximum}")
    elif col.minimum is not None:
        notes.append(f">= {col.minimum}")
    if col.casefold:
        notes.append("unique among live users, ignoring case")
    if col.validator is not None and col.validator.__doc__:
        rule = col.validator.__doc__.split(". ")[0].replace("``", "`")
        notes.append(rule[:1].lower() + rule[1:])
    return "; ".join(notes)


def field_reference() -> str:
    """The README's field reference, one table per record, from the table specs."""
    out = []
    for name, spec in TABLES.items():
        assert spec.record is not None
        out += [f"**{spec.record.__name__}** (`store.{name}`)", "", "| field | kind | notes |"]
        out.append("| --- | --- | --- |")
        required = RecordMapping(spec).required
        for field in attrs.fields(spec.record):
            col = spec.by_name[field.name]
            out.append(f"| `{field.name}` | {col.kind} | {_notes(col, field, required)} |")
        out.append("")
    return "\n".join(out).strip()


def test_readme_field_reference_matches_the_records() -> None:
    """The README's field reference is exactly what the records' table specs say."""
    text = README.read_text()
    found = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, flags=re.S)
    expected = field_reference()
    assert found is not None, f"README lacks {START} ... {END}; paste:\n{expected}"
    assert found.group(1).strip() == expected, f"paste between the markers:\n{expected}"


def test_readme_tables_have_no_blank_line_inside() -> None:
    """No markdown table of the README is split by a blank line (its rows would be lost)."""
    lines = README.read_text().splitlines()
    for i in range(1, len(lines) - 1):
        if not lines[i].strip():
            assert not (lines[i - 1].startswith("|") and lines[i + 1].startswith("| `")), i + 1


# ----------------------------------------------------------------------------- recipes
#
# Every fenced block of the README and docs/ that a reader runs as it stands is a
# recipe, marked by the comment line just above it (or above its other marker):
#
#   <!-- recipe -->                 executed here exactly as printed
#   <!-- recipe: run by PATH ... --> executed as printed by that test or script
#   <!-- template: why -->          a shape to fill in (placeholder hosts, names)
#
# Every ``sh`` block must carry one, and so must every ``python`` block that is a whole
# program (it parses, imports clonestore and has no ``...``). Shell recipes run with
# ``sh`` in a fresh copy of the checkout whose own virtual environment has clonestore
# installed as README command 1 installs it (so ``pip install 'clonestore[studio]'``
# really installs the extra); Python recipes run in a temporary directory with this
# environment's Python, and print what a reader wants to see (a few lines).

ROOT = README.parent
DOCUMENTS = (README, *sorted((ROOT / "docs").glob("*.md")))
MARKER = re.compile(r"<!-- (recipe|template)(?::\s*(.*?))? -->")
#: The most a Python recipe may print (the async example printed 92 KB of reprs).
PRINTED_AT_MOST = 2000
TIMEOUT = 600


@attrs.frozen
class Block:
    """A fenced block of a document, with the marker above it (if any)."""

    document: Path
    line: int
    language: str
    text: str
    marker: str | None
    note: str | None

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    """Every fenced block of ``document``."""
    lines = document.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\w+)", lines[i])
        if fence is None:
            i += 1
            continue
        end = lines.index("```", i + 1)
        marker = note = None
        for above in (lines[i - 1] if i else "", lines[i - 2] if i > 1 else ""):
            matched = MARKER.fullmatch(above.strip())
            if matched:
                marker, note = matched.group(1), matched.group(2)
                break
        found.append(Block(document, i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n",
                           marker, note))
        i = end + 1
    return found


def _whole_program(block: Block) -> bool:
    if block.language != "python" or "..." in block.text:
        return False
    try:
        ast.parse(block.text)
    except SyntaxError:
        return False
    return "import clonestore" in block.text


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks(document)]
RECIPES = [b for b in ALL_BLOCKS if b.marker == "recipe" and not b.note]


def test_every_runnable_block_is_marked() -> None:
    """Every sh block, and every Python block that is a whole program, says whether it is
    a recipe (and who runs it) or a template; a 'run by' names a file that exists."""
    unmarked = [b.where for b in ALL_BLOCKS
                if b.marker is None and (b.language == "sh" or _whole_program(b))]
    assert unmarked == [], f"mark them <!-- recipe --> or <!-- template: why -->: {unmarked}"
    for block in ALL_BLOCKS:
        if block.marker == "recipe" and block.note:
            assert block.note.startswith("run by "), block.where
            for path in re.findall(r"[\w./-]+/[\w.-]+", block.note):
                assert (ROOT / path.split("::")[0]).exists(), (block.where, path)
    assert {b.language for b in RECIPES} == {"sh", "python"}


@attrs.frozen
class Step:
    """One command of a shell recipe; ``serves`` is the URL it serves until stopped
    (from a ``# serves URL`` comment below it)."""

    command: str
    serves: str | None = None


def shell_steps(text: str) -> list[Step]:
    """The commands of a shell block, in order, with what each serves."""
    steps: list[Step] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# serves "):
            steps[-1] = Step(steps[-1].command, stripped.split()[2])
        elif stripped and not stripped.startswith("#"):
            steps.append(Step(line))
    return steps


def environment(bin_first: Path) -> dict[str, str]:
    """This process's environment with ``bin_first`` first on PATH, as if activated."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join((str(bin_first), env.get("PATH", "")))
    return env


def run_step(step: Step, cwd: Path, bin_first: Path) -> str:
    """Run ``step`` exactly as written, by ``sh`` in ``cwd`` with ``bin_first`` first on
    PATH; a serving step is started, asked for its URL (which must answer 200) and
    stopped. What it printed (or served)."""
    env = environment(bin_first)
    if step.serves is None:
        done = subprocess.run(["sh", "-c", step.command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, f"{step.command}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
        return done.stdout
    server = subprocess.Popen(["sh", "-c", step.command], cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(step.serves, timeout=5) as response:
                    assert response.status == 200
                    return str(response.read().decode())
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read() if server.stdout else ""
                    raise AssertionError(f"{step.command} did not serve {step.serves}:\n"
                                         f"{output[-3000:]}") from None
                time.sleep(0.3)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


#: What a copy of the checkout leaves out (as a fresh clone would not have it).
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".hypothesis", "*.db", "*.db-wal", "*.db-shm", "*.json.lock",
)


@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the checkout with ``.venv`` made and clonestore installed as README
    command 1 does (``pip install .``, nothing else)."""
    copy = tmp_path_factory.mktemp("recipes") / "clonestore"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=NOT_IN_A_CLONE)
    run_step(Step("python3 -m venv .venv && .venv/bin/pip install --quiet ."), copy,
             Path(sys.executable).parent)
    return copy


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("recipe", [b for b in RECIPES if b.language == "sh"],
                         ids=lambda b: b.where)
def test_shell_recipe_runs_as_printed(recipe: Block, installed_copy: Path) -> None:
    """Each command of a shell recipe runs exactly as printed in a fresh installation
    (what it serves answers 200), in order, and succeeds."""
    for step in shell_steps(recipe.text):
        shown = run_step(step, installed_copy, installed_copy / ".venv" / "bin")
        if step.serves is not None:
            assert "<html" in shown.lower() or shown.startswith("{"), shown[:500]


@pytest.mark.parametrize("recipe", [b for b in RECIPES if b.language == "python"],
                         ids=lambda b: b.where)
def test_python_recipe_runs_and_prints_a_few_lines(recipe: Block, tmp_path: Path) -> None:
    """Each Python recipe runs as printed (in a temporary directory) and prints what a
    reader wants to see: at most a few lines, not pages of reprs."""
    script = tmp_path / "recipe.py"
    script.write_text(recipe.text, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(done.stdout) <= PRINTED_AT_MOST, f"{len(done.stdout)} characters printed"
