"""``mariadb://``: the MariaDB backend (:mod:`._backend`, pooled PyMySQL
connections). Private to the plugin."""
