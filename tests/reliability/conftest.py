"""Reliability tests: the shared-storage matrix and PostgreSQL fault helpers.

``shared_url`` (the backends several processes share, defined with the
main matrix in ``tests/matrix.py``) is what modules needing shared storage
override ``clonestore_url`` with, so the kit's fixtures follow.

The server-restart test restarts a throwaway PostgreSQL of its own
(``tests/servers.py``), never the shared server, so it always runs.
"""
