"""LangChain's standard tests include unmarked coroutines (they expect pytest-asyncio's auto
mode); the repository runs pytest-asyncio in strict mode (auto mode would also take the
anyio-marked tests of examples/asgi_app). Each coroutine test collected here is marked for
pytest-asyncio as it is collected; plain functions are left alone."""

from __future__ import annotations

import inspect
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    if name.startswith("test") and inspect.iscoroutinefunction(obj):
        pytest.mark.asyncio(obj)
