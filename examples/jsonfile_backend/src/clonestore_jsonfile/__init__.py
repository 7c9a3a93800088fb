"""clonestore-jsonfile: a single-file JSON storage backend for clonestore.

An example of an out-of-tree backend: a package of its own that registers
itself through the ``clonestore`` entry-point group and is proved with the
conformance kit clonestore ships. Once installed::

    import clonestore

    with clonestore.open("jsonfile:///var/data/clones.json") as store:
        store.users.create(email="ada@example.com", name="Ada")

Tables live in memory; every commit rewrites the file atomically (see
:mod:`clonestore_jsonfile.backend`) in a tagged JSON encoding that gives back
exactly the values stored (see :mod:`clonestore_jsonfile.encoding`).
"""

from __future__ import annotations

from typing import Any

from clonestore import hookimpl
from clonestore_jsonfile.backend import FILE_FORMAT, FILE_VERSION, JsonFileBackend

__all__ = ["FILE_FORMAT", "FILE_VERSION", "JsonFileBackend", "clonestore_backends"]

__version__ = "0.1.0"


@hookimpl
def clonestore_backends() -> dict[str, Any]:
    """Serve ``jsonfile://`` URLs."""
    return {"jsonfile": JsonFileBackend}
