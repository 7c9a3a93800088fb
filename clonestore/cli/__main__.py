"""``python -m clonestore.cli``: the same as the ``clonestore`` command."""

from __future__ import annotations

import sys

from clonestore.cli import main

sys.exit(main())
