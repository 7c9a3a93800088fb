"""Differential property: with the audit plugin on, random operation sequences leave the
same audit chains on every backend.

:class:`AuditedAgree` is :class:`~clonestore.testing.properties.test_operations.BackendsAgree`
on stores opened with the audit plugin (the ``audited_stores`` fixture): results, errors and
every table must agree, the audit's tables included: the same entries (ids, owners, ``seq``,
stamps, actions, changes, redactions) in the same per-owner chains, with the same heads. Only
the columns a random salt enters differ by design (:data:`SALTED`); instead, at the end of
each example every store's ``audit.verify()`` must pass, over the same rows and chains.
"""

from __future__ import annotations

from typing import Final

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from clonestore.testing.differential import Stores
from clonestore.testing.properties.test_operations import STEPS, BackendsAgree

__all__ = ["SALTED", "AuditedAgree", "test_audit_chains_agree"]

#: Columns a random salt enters (the salt keeps a digest from confirming a guessed
#: personal value once erased): they differ between any two stores, by design.
SALTED: Final = {
    "audit_entries": ("salt", "personal_digest", "prev_hash", "hash"),
    "audit_heads": ("hash",),
}


class AuditedAgree(BackendsAgree):
    """:class:`BackendsAgree` with the audit plugin on every store: its tables compared when
    the others are (after each step that may have written; after steps that only read, at
    the next such step or the example's end), all but the :data:`SALTED` columns."""

    random_columns = SALTED

    def teardown(self) -> None:
        """Once per example (a full ``verify()`` reads every chain: after every step, on
        four backends, it made the property slower than the test timeout)."""
        super().teardown()
        found = {}
        for name, store in self.stores:
            report = store.audit.verify()
            assert report.ok, f"{name}: {report}"
            found[name] = (report.checked, report.chains)
        assert len(set(found.values())) == 1, found


def test_audit_chains_agree(audited_stores: Stores) -> None:
    """With the audit on, any sequence of operations leaves the same chains everywhere."""
    profile = settings()  # the profile in force
    run_state_machine_as_test(
        type("AuditedAgree", (AuditedAgree,), {"stores": audited_stores}),
        # A fifth of the profile's examples: the rules are test_operations', which runs them
        # all; what is new here is the audit, which every step of every example exercises.
        settings=settings(
            profile,
            max_examples=max(5, profile.max_examples // 5),
            stateful_step_count=STEPS,
            deadline=None,
        ),
    )
