"""``postgresql://``: the PostgreSQL backend (:mod:`._backend`) and what only it
uses: its connection pool (:mod:`._pool`), ``LISTEN``/``NOTIFY`` (:mod:`._notifications`),
reads from hot standbys (:mod:`._replicas`), pgvector search (:mod:`._vectors`),
``COPY`` (:mod:`._copy`) and the asynchronous variant on asyncpg (:mod:`._async`).
Private to the plugin."""
