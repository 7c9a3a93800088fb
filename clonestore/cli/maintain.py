"""``clonestore maintain``: run the due maintenance tasks, once or ``--every`` interval."""

from __future__ import annotations

import json
import re
import sys
import time

import click

from clonestore.cli._common import (
    Failure,
    StoreOptions,
    echo_json,
    json_option,
    layout_option,
    open_store,
    plugins_option,
    url_option,
)
from clonestore.cli._group import cli
from clonestore.maintenance import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TIME_LIMIT,
    MaintenanceReport,
)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def _interval(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``90``, ``30s``, ``15m``, ``1h``, ``1d`` as seconds."""
    if value is None:
        return None
    match = _INTERVAL.fullmatch(value.strip())
    if match is None or float(match[1]) <= 0:
        raise click.BadParameter("expected a duration such as 30s, 15m, 1h or 1d")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _retention(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in value:
        name, sep, days = item.partition("=")
        try:
            out[name.strip()] = float(days)
        except ValueError:
            raise click.BadParameter(f"expected TASK=DAYS, got {item!r}") from None
        if not sep:
            raise click.BadParameter(f"expected TASK=DAYS, got {item!r}")
    return out


def _show(report: MaintenanceReport, shown_url: str, as_json: bool) -> None:
    if as_json:
        echo_json(report.as_json())
        return
    if not report.ran:
        click.echo(f"{shown_url}: maintenance is running elsewhere (held by {report.held_by})")
        return
    for task in report.tasks:
        if task.skipped:
            click.echo(f"{task.name}: skipped, {task.skipped}")
        elif task.error:
            click.echo(f"{task.name}: FAILED after {task.removed} row(s): {task.error}")
        else:
            more = "" if task.complete else " (time limit reached; more remain)"
            click.echo(f"{task.name}: removed {task.removed} row(s) in {task.seconds:.2f}s{more}")
    click.echo(f"{shown_url}: maintenance done in {report.seconds:.2f}s")


@cli.command(short_help="run the due maintenance tasks (retention, cleanup)")
@url_option
@plugins_option
@layout_option
@click.option("--task", "tasks", multiple=True, metavar="NAME",
              help="run only this task (repeatable); default: every task")
@click.option("--retention", "retention", multiple=True, callback=_retention,
              metavar="TASK=DAYS",
              help="age in days past which the task's rows go (repeatable), e.g. "
              "audit.purge=90, soft_deleted=30 or turns=365; soft_deleted and turns run "
              "only when given one")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH_SIZE,
              show_default=True, help="rows per transaction")
@click.option("--time-limit", type=click.FloatRange(min=0.001, max=86_400),
              default=DEFAULT_TIME_LIMIT, show_default=True, metavar="SECONDS",
              help="seconds each task may run; the rest waits for the next run")
@click.option("--every", callback=_interval, default=None, metavar="INTERVAL",
              help="keep running: once every INTERVAL (30s, 15m, 1h, 1d) until stopped")
@click.option("--runs", type=click.IntRange(min=1), default=None, metavar="N",
              help="with --every: stop after N runs")
@click.option("--progress/--no-progress", default=None,
              help="report each batch on stderr (default: when stderr is a terminal)")
@json_option
def maintain(
    url: str | None,
    plugins: tuple[str, ...],
    layout: str | None,
    tasks: tuple[str, ...],
    retention: dict[str, float],
    batch_size: int,
    time_limit: float,
    every: float | None,
    runs: int | None,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Run every due maintenance task: expired cache entries (plugin cache), old
    rate-limit windows (ratelimit), audit entries past retention, 90 days by default
    (audit), and, when given an age, soft-deleted rows with their dependants and old
    turns; on PostgreSQL's partitioned layout, the months ahead (partitions). Each
    task works in batches and stops at its time limit. One process at a time: a run
    that finds another one under way does nothing and says who holds it (exit 0).
    Exits 1 when a task failed (with --every, keeps going)."""
    options = StoreOptions(url, plugins, layout)
    show_progress = sys.stderr.isatty() if progress is None else progress

    def report_progress(task: str, removed: int) -> None:
        if as_json:
            click.echo(json.dumps({"task": task, "removed": removed}), err=True)
        else:
            click.echo(f"{task}: {removed} removed so far", err=True)

    with open_store(options) as store:
        done = 0
        while True:
            started = time.monotonic()
            report = store.maintain(
                tasks=tasks or None,
                retention=retention,
                batch_size=batch_size,
                time_limit=time_limit,
                progress=report_progress if show_progress else None,
            )
            _show(report, options.shown_url, as_json)
            done += 1
            if every is None:
                if not report.ok:
                    failed = [t.name for t in report.tasks if t.error]
                    raise Failure(
                        f"{options.shown_url}: maintenance task(s) failed: {', '.join(failed)}",
                        "see the lines above; the other tasks ran",
                    )
                return
            if runs is not None and done >= runs:
                return
            time.sleep(max(0.0, every - (time.monotonic() - started)))
