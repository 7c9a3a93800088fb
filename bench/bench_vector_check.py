"""Vector validation: ``clonestore.schema.float32_vector`` (length, type, finiteness,
float32 rounding, the flush of tiny items) on 384 dimensions given in every accepted
form, against numpy's bare conversion of the same form to a new float32 array (no
checks: the floor), and for lists against the per-item Python loop validation once
was, in one run (issue 20 item B4: at most 5 us for 384 dimensions).

    python bench/bench_vector_check.py [--dims 384] [--calls 20000]

Minimum of 7 repeats, microseconds per vector. Prints the load average: on a shared
machine absolute times move with it, ratios within the run much less.
"""

from __future__ import annotations

import argparse
import array
import math
import os
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from clonestore.schema import Column, float32_vector


def per_item_loop(value: Any) -> list[float]:
    """The check before issue 20: every item's type and finiteness in Python."""
    out: list[float] = []
    for item in value:
        if type(item) is int:
            item = float(item)
        if type(item) is not float or not math.isfinite(item):
            raise ValueError("vector items must be finite numbers")
        out.append(item + 0.0)
    return out


def best_us(call: Callable[[], Any], calls: int) -> float:
    return min(timeit.repeat(call, number=calls, repeat=7)) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    column = Column(name="embedding", kind="vector", max_length=16_384, min_length=1)
    values = np.random.default_rng(0).standard_normal(args.dims)
    forms: dict[str, Any] = {
        "numpy float32": values.astype(np.float32),
        "numpy float64": values,
        "numpy float16": values.astype(np.float16),
        "array('f')": array.array("f", values.astype(np.float32).tobytes()),
        "array('d')": array.array("d", values.tobytes()),
        "memoryview": memoryview(values),
        "list of float": values.tolist(),
        "tuple of float": tuple(values.tolist()),
        "list of np.float64": list(values),
        "list of np.float32": list(values.astype(np.float32)),
    }
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.dims} dimensions, us per vector (min of 7 x {args.calls:,} calls; load {load})")
    print(f"  {'form':<19} {'float32_vector':>14} {'bare numpy':>11} {'ratio':>6}  per-item loop")
    for label, form in forms.items():
        checked = best_us(lambda form=form: float32_vector(column, form), args.calls)
        bare = best_us(lambda form=form: np.array(form, np.float32), args.calls)
        line = f"  {label:<19} {checked:11.2f} us {bare:8.2f} us {checked / bare:5.1f}x"
        if isinstance(form, (list, tuple)) and type(form[0]) is float:
            loop = best_us(lambda form=form: per_item_loop(form), args.calls)
            line += f"  {loop:7.2f} us ({loop / checked:.1f}x float32_vector's)"
        print(line)


if __name__ == "__main__":
    main()
