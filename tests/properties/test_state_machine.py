"""Random operation sequences give identical results on memory, SQLite and PostgreSQL:
the kit's state machine (clonestore.testing.properties.test_operations), on three stores."""

from clonestore.testing.properties import test_operations as operations

test_backends_agree_on_random_operation_sequences = (
    operations.test_backends_agree_on_random_operation_sequences
)
