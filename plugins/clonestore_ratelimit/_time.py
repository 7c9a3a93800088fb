"""Small helpers shared by the algorithms and the counter stores: time in
microseconds, row ids, and a bounded map."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, TypeVar

__all__ = ["EPOCH", "Bounded", "from_us", "new_id", "to_us"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_CACHE_SIZE: Final = 10_000

K = TypeVar("K")
V = TypeVar("V")


def new_id() -> str:
    """A random row id in UUID form (cheaper than ``uuid.uuid4``: a check makes one
    each time, and it is used only when the counter's row is new)."""
    digits = f"{random.getrandbits(128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch."""
    return (moment - EPOCH) // _US


def from_us(us: int) -> datetime:
    """The UTC datetime ``us`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=us)


class Bounded(Generic[K, V]):
    """A small thread-safe map that forgets its oldest entries."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def forget(self, match: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [k for k in self._data if match(k)]:
                del self._data[key]
