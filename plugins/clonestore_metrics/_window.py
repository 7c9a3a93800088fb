"""Latency kept per (repository, operation): cumulative histogram buckets for
Prometheus, and the latest samples for percentiles from Python."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable

__all__ = ["BUCKETS", "SAMPLES", "LatencyWindow", "percentile"]

#: How many of the latest calls each window keeps for its percentiles.
SAMPLES = 8192
#: Histogram bucket bounds, in seconds: from 100 µs to 10 s (then +Inf).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0)


def percentile(sorted_seconds: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in (0, 1]) of sorted samples, in seconds."""
    if not sorted_seconds:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_seconds)))
    return sorted_seconds[rank - 1]


class LatencyWindow:
    """One operation's calls: every one in the histogram (``count``, ``total``, a count
    per bucket), the latest :data:`SAMPLES` kept for percentiles, and its errors."""

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=SAMPLES)
        self._lock = threading.Lock()
        self.count = 0
        self.total = 0.0
        self.errors = 0
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)
            self.count += 1
            self.total += seconds
            self.buckets[bisect_left(BUCKETS, seconds)] += 1

    def snapshot(self) -> list[float]:
        with self._lock:
            return list(self._samples)

    def histogram(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` buckets and the sum of seconds, for Prometheus."""
        with self._lock:
            counts, total = list(self.buckets), self.total
        out, running = [], 0
        for bound, n in zip((*BUCKETS, math.inf), counts, strict=True):
            running += n
            out.append(("+Inf" if bound == math.inf else repr(bound), float(running)))
        return out, total

    @staticmethod
    def merged(windows: Iterable[LatencyWindow]) -> list[float]:
        """Every window's samples, sorted."""
        out: list[float] = []
        for window in windows:
            out.extend(window.snapshot())
        out.sort()
        return out
