"""Random operation sequences give identical results on memory, SQLite and PostgreSQL:
the kit's state machine (clonestore.testing.properties.operations), on three stores."""

from clonestore.testing.properties import operations

test_backends_agree_on_random_operation_sequences = (
    operations.test_backends_agree_on_random_operation_sequences
)
