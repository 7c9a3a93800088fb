"""The click command group: help, version, in-process runs, one-line failures."""

from __future__ import annotations

from click.testing import CliRunner

import clonestore
from clonestore.cli import cli, main


def test_group_lists_its_commands_and_version() -> None:
    """`clonestore --help` lists the commands; `--version` prints the package version."""
    runner = CliRunner()
    shown = runner.invoke(cli, ["--help"])
    assert shown.exit_code == 0
    assert "migrate" in shown.output
    assert "status" in shown.output
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert clonestore.__version__ in version.output


def test_status_in_process_on_memory() -> None:
    """In process (CliRunner), `status` on memory:// says it has no migrations."""
    result = CliRunner().invoke(cli, ["status", "--url", "memory://"])
    assert result.exit_code == 0, result.output
    assert "memory://: this backend has no migrations" in result.output


def test_main_returns_the_exit_status() -> None:
    """`main()` returns 0, 1 for a failure and 2 for a usage error instead of exiting."""
    assert main(["status", "--url", "memory://"]) == 0
    assert main(["status", "--url", "nosuch://x"]) == 1
    assert main(["no-such-command"]) == 2


def test_a_failure_is_one_line_naming_the_command() -> None:
    """A clonestore error becomes one stderr line: `clonestore CMD: error: ...; advice`."""
    result = CliRunner().invoke(cli, ["migrate", "--url", "nosuch://host/db"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("clonestore migrate: error: no backend for URL")
    assert lines[0].endswith("check --url and --plugins (clonestore migrate --help)")
