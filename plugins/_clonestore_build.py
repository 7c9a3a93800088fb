"""clonestore's build backend: setuptools', with a static path in editable installs.

For this layout (the core at the top, the built-in plugins under ``plugins/``)
setuptools makes ``pip install -e .`` work through an import hook, which type
checkers cannot follow: mypy run outside the repository would report
``Cannot find implementation or library stub for module named "clonestore"``.
:func:`build_editable` therefore adds one ``.pth`` file to the editable wheel
that lists the two directories holding the packages, a path mypy and pyright
read. Imports find the same files either way. Wheels and sdists are
setuptools' own, unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every other hook, as setuptools has it)

#: The file added to editable wheels (lists the repository and its plugins/ directory).
PTH_NAME = "clonestore-static-path.pth"

_PLUGINS = Path(__file__).resolve().parent
_ROOT = _PLUGINS.parent


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """setuptools' editable wheel, plus :data:`PTH_NAME`."""
    name: str = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    _add_file(os.path.join(wheel_directory, name), PTH_NAME, f"{_ROOT}\n{_PLUGINS}\n".encode())
    return name


def _add_file(wheel: str, name: str, content: bytes) -> None:
    """Rewrite ``wheel`` with one more file, recorded in its RECORD."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    temporary = wheel + ".tmp"
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(
        temporary, "w", zipfile.ZIP_DEFLATED
    ) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data += f"{name},sha256={digest},{len(content)}\n".encode()
            target.writestr(item, data)
        target.writestr(name, content)
    os.replace(temporary, wheel)
