"""The shared SQL layer of the Peewee plugin: what SQLite, PostgreSQL and MariaDB have in common.

``_backend`` (``SQLBackend``: transactions, statements, the SPI methods), ``_compiler``
(query nodes to SQL), ``_statements`` (the one-statement writes), ``_codecs`` (values in
and out), ``_models``/``_fields``/``_table_options`` (tables from the core's specs),
``_migration_runner`` (the migration chains), ``_json_lookups``, ``_errors``,
``_options``, ``_query_log``, the dialect records (``_dialects``) and the async pieces
(``_async_pool``, ``_async_connections``). Engine folders (``sqlite/``, ``postgres/``,
``mariadb/``) import from here; nothing here imports an engine folder. Private: the public
face for engine authors is ``clonestore_peewee.dialects``.
"""
