"""With the audit plugin on, random operation sequences leave the same per-owner chains on
memory, SQLite, PostgreSQL and MariaDB: the kit's property
(clonestore.testing.properties.test_audit_chains), on four stores."""

from clonestore.testing.properties import test_audit_chains as audit_chains

test_audit_chains_agree = audit_chains.test_audit_chains_agree
