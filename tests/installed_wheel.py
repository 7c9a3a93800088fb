"""The working tree as an application outside it gets it: a wheel built from a copy of
the tree, installed without dependencies into a fresh virtualenv that has no system
site-packages, built once per test session (tests/test_wheel.py, tests/test_typing.py).

The wheel's dependencies (attrs, pluggy, peewee, click, sortedcontainers, numpy,
psycopg2) are made importable by a ``.pth`` file pointing at a directory of links to
just those distributions from the running environment, so the venv never sees the
editable checkout, and nothing is downloaded but the build backend.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The wheel's own dependencies, read from pyproject.toml so the list cannot drift from
#: what the wheel needs, plus the postgres extra's driver.
DEPENDENCIES = (
    *(
        re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0]
        for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "dependencies"
        ]
    ),
    "psycopg2-binary",
)
_SKIP = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "*.db",
    "*.db-wal",
    "*.db-shm",
    ".venv",
    "venv",
)

def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=500,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


#: What this session built: "wheel" and "venv" (pytest runs one session per process).
_BUILT: dict[str, Path] = {}


def build_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the working tree (the checkout is left untouched),
    once per session."""
    if "wheel" in _BUILT:
        return _BUILT["wheel"]
    work = tmp_path_factory.mktemp("wheel-build")
    source = work / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_SKIP)
    out = work / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, source, cwd=work)
    (built,) = out.glob("clonestore-*.whl")
    _BUILT["wheel"] = built
    return built


def _link_dependencies(target: Path) -> None:
    """Links to the files of DEPENDENCIES (and only those) from this environment."""
    target.mkdir()
    for name in DEPENDENCIES:
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            origin = Path(str(dist.locate_file(top)))
            link = target / top
            if origin.exists() and not link.exists() and top != "__pycache__":
                link.symlink_to(origin)


def install_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the checkout with the wheel installed, once per session."""
    if "venv" in _BUILT:
        return _BUILT["venv"]
    wheel = build_wheel(tmp_path_factory)
    root = tmp_path_factory.mktemp("wheel-venv")
    env_dir = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", env_dir, cwd=root)
    python = env_dir / "bin" / "python"
    run(
        sys.executable, "-m", "pip", "--python", python, "install",
        "--no-deps", "--no-index", "--disable-pip-version-check", "--quiet", wheel,
        cwd=root,
    )  # fmt: skip
    purelib = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root
        ).strip()
    )
    deps = root / "deps"
    _link_dependencies(deps)
    (purelib / "clonestore_test_deps.pth").write_text(f"{deps}\n")
    assert sysconfig.get_paths()["purelib"] != str(purelib)
    _BUILT["venv"] = env_dir
    return env_dir


