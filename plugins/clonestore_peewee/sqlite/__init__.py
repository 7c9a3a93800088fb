"""``sqlite://``: the SQLite backend (:mod:`._backend`), its vector search
(:mod:`._vectors`, sqlite-vec or a registered aggregate) and its asynchronous
variant on aiosqlite (:mod:`._async`). Private to the plugin."""
