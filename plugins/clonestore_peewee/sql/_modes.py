"""What :meth:`SQLBackend.execute <.backend.SQLBackend.execute>` returns for a statement:
the first row, all rows, the row count, nothing; ``MANY`` runs the statement once per
parameter tuple."""

from __future__ import annotations

from typing import Final

__all__ = ["ALL", "MANY", "NONE", "ONE", "ROWCOUNT"]

ONE: Final = 1
ALL: Final = 2
ROWCOUNT: Final = 3
NONE: Final = 4
MANY: Final = 5
