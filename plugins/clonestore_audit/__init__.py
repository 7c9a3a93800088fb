"""Audit trail for clonestore: ``store.audit``.

Every write through the store's gateway is recorded, bulk ones included: the
action (``"user.create"``), the resource, the result, the changed fields
before and after (sensitive ones masked) and who, from where, in which
request (``store.context(...)``). A successful write's row is written in the
write's own transaction; a refused or failed write is recorded once, after
its transaction has ended. Rows are append-only and hash-chained;
``verify()`` finds the first broken link. Enable it by name or configure it::

    store = clonestore.open(url, plugins=["audit"])
    store = clonestore.open(url, plugins=[AuditPlugin(mask=("*password*", "email"))])

See ``docs/plugins.md`` for the chain, purge and erasure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from clonestore import ConfigurationError, Operation, Store, TableSpec, ValidationError, hookimpl
from clonestore.maintenance import MaintenanceTask
from clonestore.services import AuditService
from clonestore_audit._capture import DEFAULT_MASK, MASKED
from clonestore_audit._chain import GENESIS, ChainReport
from clonestore_audit._maintenance import TASK as MAINTENANCE
from clonestore_audit._records import AuditEntry, AuditStatistics
from clonestore_audit._service import AuditConfig, AuditLog
from clonestore_audit._tables import ANCHORS, HEAD, LOG, PERSONAL, SYSTEM

__all__ = [
    "DEFAULT_MASK",
    "GENESIS",
    "MASKED",
    "PERSONAL",
    "SYSTEM",
    "AuditConfig",
    "AuditEntry",
    "AuditLog",
    "AuditPlugin",
    "AuditStatistics",
    "ChainReport",
    "audit_of",
    "plugin",
]


class AuditPlugin:
    """The audit plugin; attaches an :class:`AuditLog` as ``store.audit``.

    :param mask: column-name patterns (``fnmatch``) whose values are recorded
        as ``"***"``; default :data:`DEFAULT_MASK`.
    :param guard: keep the log ``append_only`` (a table option the backend
        enforces, at the engine where it has one: UPDATE and DELETE of audit rows
        are refused, except purge and erasure). The store then needs a backend
        declaring the ``append_only`` capability; ``guard=False`` does without.

    Order: its ``before_write`` runs first and its ``after_write`` last, so
    the audit is the outermost plugin and records what the others decided.
    """

    def __init__(self, *, mask: Sequence[str] = DEFAULT_MASK, guard: bool = True) -> None:
        if isinstance(mask, str) or not all(isinstance(p, str) for p in mask):
            raise ValidationError("must be a list of column-name patterns", field="mask")
        self.config = AuditConfig(mask=tuple(mask), guard=guard)

    def __repr__(self) -> str:
        return f"<AuditPlugin mask={list(self.config.mask)}>"

    @hookimpl
    def clonestore_required_capabilities(self) -> Sequence[str]:
        """``append_only``, unless configured with ``guard=False``."""
        return ["append_only"] if self.config.guard else []

    @hookimpl
    def clonestore_tables(self) -> Sequence[TableSpec]:
        """The log (append-only when guarded), its head and its purge anchors."""
        log = LOG if self.config.guard else attrs.evolve(LOG, append_only=None)
        return [log, HEAD, ANCHORS]

    @hookimpl
    def clonestore_migrations(self) -> Mapping[str, str]:
        """Its tables' versioned migrations (``clonestore migrate --plugins audit``)."""
        return {"audit": "clonestore_audit.migrations"}

    @hookimpl
    def clonestore_store_opened(self, store: Store) -> None:
        """Attach ``store.audit``."""
        store.attach("audit", AuditLog(store, self.config))

    @hookimpl
    def clonestore_maintenance_tasks(self, store: Store) -> Sequence[MaintenanceTask]:
        """``audit.purge``, run by ``store.maintain()``."""
        return [MAINTENANCE]

    @hookimpl(tryfirst=True)
    def clonestore_before_write(self, store: Store, op: Operation) -> None:
        """Read the rows an update or delete will change."""
        audit: AuditLog = store.services["audit"]
        audit.before_write(op)

    @hookimpl(trylast=True)
    def clonestore_after_write(self, store: Store, op: Operation, result: Any) -> None:
        """Keep the write's entries for its transaction's commit."""
        audit: AuditLog = store.services["audit"]
        audit.after_write(op, result)

    @hookimpl(trylast=True)
    def clonestore_before_commit(self, store: Store, ops: Sequence[Operation]) -> None:
        """Append the transaction's entries, in it, as its last writes."""
        audit: AuditLog = store.services["audit"]
        audit.before_commit(ops)

    @hookimpl(trylast=True)
    def clonestore_write_failed(self, store: Store, op: Operation, error: BaseException) -> None:
        """Record the refused or failed write."""
        audit: AuditLog = store.services["audit"]
        audit.write_failed(op, error)

    @hookimpl
    def clonestore_export_user(self, store: Store, user_id: str) -> Mapping[str, Any]:
        """Entries by or about the user."""
        audit: AuditLog = store.services["audit"]
        return audit.export_user(user_id)

    @hookimpl
    def clonestore_erase_user(self, store: Store, user_id: str) -> None:
        """Erase the personal fields of entries by or about the user."""
        audit: AuditLog = store.services["audit"]
        audit.erase_user(user_id)


#: The plugin enabled by name (``plugins=["audit"]``): default masking, guarded.
plugin = AuditPlugin()


#: The core types ``store.audit`` as :class:`clonestore.services.AuditService`; mypy
#: checks here that :class:`AuditLog` implements it.
_IMPLEMENTS: type[AuditService] = AuditLog


def audit_of(store: Store) -> AuditLog:
    """``store.audit`` as the plugin's own :class:`AuditLog`, with every type precise.

    :raises ConfigurationError: the store was not opened with this plugin.
    """
    service = store.services.get("audit")
    if not isinstance(service, AuditLog):
        raise ConfigurationError(
            "this store was not opened with the audit plugin; "
            "open it with clonestore.open(url, plugins=['audit'])"
        )
    return service
