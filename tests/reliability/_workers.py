"""Process entry points for the concurrency tests (importable without pytest, for spawn)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import clonestore
from bench.soak import Ledger, run_workload


def mixed_workload(url: str, seconds: float, seed: int) -> dict[str, Any]:
    """Run the soak workload in this process; what it acknowledged and what escaped."""
    ledger, stop = Ledger(), threading.Event()
    with clonestore.open(url) as store:
        timer = threading.Timer(seconds, stop.set)
        timer.start()
        run_workload(store, ledger, stop, seed)
    return {
        "users": ledger.users, "names": ledger.names, "sessions": ledger.sessions,
        "turns": ledger.turns, "memories": ledger.memories, "ops": ledger.ops,
        "escaped": [repr(e) for e in ledger.escaped],
    }


def create_at(url: str, start: float, email: str) -> str:
    """Create a user with ``email`` at wall-clock time ``start``; the outcome's class name."""
    with clonestore.open(url) as store:
        time.sleep(max(0.0, start - time.time()))
        try:
            store.users.create(email=email, name="racer")
        except clonestore.ClonestoreError as exc:
            return type(exc).__name__
        return "created"


def add_turns(url: str, session_id: str, count: int, seed: int) -> list[tuple[str, int, str]]:
    """Add ``count`` turns to one session; (id, latency, cost) of each acknowledged turn."""
    done: list[tuple[str, int, str]] = []
    with clonestore.open(url) as store:
        for i in range(count):
            latency, cost = seed * 100 + i, Decimal(seed * 1000 + i) / 10**6
            turn = store.sessions.add_turn(session_id, llm_latency_ms=latency, llm_cost=cost)
            done.append((turn.id, latency, str(cost)))
    return done
