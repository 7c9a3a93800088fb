"""The rate limiter's tables: fixed-window counters and token buckets."""

from __future__ import annotations

from typing import Final

from clonestore.spi import Column, Index, TableSpec, Unique

__all__ = ["BUCKETS", "BUCKET_KEY", "WINDOWS", "WINDOW_KEY"]

_NAME_LENGTH: Final = 200

#: One row per (user, endpoint, window length, window start): the seed's
#: counter table. ``count`` counts every attempt, admitted or not; ``quota`` is
#: the limit of the last check; ``refused`` counts attempts a sliding window
#: refused although ``count <= quota``.
WINDOWS: Final = TableSpec(
    name="ratelimit_windows",
    ephemeral=True,
    columns=(
        Column(name="id", kind="id"),
        Column(name="user_id", kind="key", max_length=_NAME_LENGTH),
        Column(name="endpoint", kind="key", max_length=_NAME_LENGTH),
        Column(name="window_seconds", kind="int"),
        Column(name="window_start", kind="datetime"),
        Column(name="window_end", kind="datetime"),
        Column(name="count", kind="int"),
        Column(name="quota", kind="int"),
        Column(name="refused", kind="int"),
    ),
    unique=(Unique(("user_id", "endpoint", "window_seconds", "window_start")),),
    indexes=(Index(("window_end",)), Index(("user_id",))),
)
WINDOW_KEY: Final = ("user_id", "endpoint", "window_seconds", "window_start")

#: One token bucket per (user, endpoint), kept as GCRA state: ``tat_us`` is the
#: theoretical arrival time in microseconds since the epoch (the bucket is full
#: again at that instant).
BUCKETS: Final = TableSpec(
    name="ratelimit_buckets",
    ephemeral=True,
    columns=(
        Column(name="id", kind="id"),
        Column(name="user_id", kind="key", max_length=_NAME_LENGTH),
        Column(name="endpoint", kind="key", max_length=_NAME_LENGTH),
        Column(name="tat_us", kind="int"),
        Column(name="admitted", kind="int"),
        Column(name="refused", kind="int"),
    ),
    unique=(Unique(("user_id", "endpoint")),),
    indexes=(Index(("tat_us",)), Index(("user_id",))),
)
BUCKET_KEY: Final = ("user_id", "endpoint")
