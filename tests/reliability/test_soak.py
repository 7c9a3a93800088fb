"""bench/soak.py, briefly: a mixed workload under injected faults loses no acknowledged write."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


@pytest.fixture
def clonestore_url(shared_url: str) -> str:
    """Storage another process (the fault injector) can reach."""
    return shared_url


def test_soak_loses_nothing(clonestore_url: str) -> None:
    """Six seconds of soak with faults: exit 0, faults injected, zero writes lost."""
    done = subprocess.run(
        [sys.executable, str(SOAK), "--url", clonestore_url, "--seconds", "6", "--threads", "4"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "writes lost or inconsistent: 0" in done.stdout
    assert re.search(r"faults injected: (connections killed|locks held) [1-9]", done.stdout)
    operations = re.search(r"operations: (\d+)", done.stdout)
    assert operations is not None
    assert int(operations.group(1)) > 100
