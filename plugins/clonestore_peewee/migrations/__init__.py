"""clonestore's schema migrations (``playhouse.migrations`` scripts).

Numbered scripts, applied in order by ``clonestore migrate`` (or
``store.migrate()``, or automatically when a store opens). Each defines
``up(migrator, db)`` and ``down(migrator, db)`` and declares FROZEN copies of
the tables as they were at its version: a migration never imports the live
record classes, whose shape moves on. Column types come from
``clonestore_peewee.sql._fields``, whose classes are stable storage types.

They are the package ``clonestore_peewee.migrations`` (this directory), shipped in the wheel.
To change the schema, add ``NNNN_what.py`` with ``up`` and ``down`` and
update the record classes in the same change; ``tests/test_migrations.py``
fails while the migrated schema and the record specs disagree.
"""
