"""0002: what the original schema had and 0001 lacked.

* sessions ``llm_provider`` and ``tts_provider``; voice models ``model_path``;
  face models ``resolution`` (a JSON ``{"width", "height"}`` object): nullable
  columns, so existing rows stay valid;
* an index on ``memories.session_id`` (deleting a session sets it to NULL);
* the ``specializations`` table (``database-guidelines.md``), ``name`` unique.

Frozen at this version: written with the runner's portable operations
(``add_column``, ``add_index``, ``drop_column``) and a frozen model.
"""

from __future__ import annotations

from typing import Any

from peewee import Model, ModelIndex

from clonestore_peewee.sql._fields import DatetimeField, IdField, IntField, JsonField, TextField

_COLUMNS = (
    ("sessions", "llm_provider", TextField),
    ("sessions", "tts_provider", TextField),
    ("voice_models", "model_path", TextField),
    ("face_models", "resolution", JsonField),
)


def _specializations(db: Any) -> type[Model]:
    class Specializations(Model):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        name = TextField()
        description = TextField(null=True)
        model_path = TextField()

        class Meta:
            database = db
            table_name = "specializations"

    Specializations.add_index(
        ModelIndex(
            Specializations,
            [Specializations.name],
            unique=True,
            name="uq_specializations_name",
        )
    )
    return Specializations


def up(migrator: Any, db: Any) -> None:
    """Add the columns, the index and the table."""
    migrator.migrate(
        *(migrator.add_column(table, name, field(null=True)) for table, name, field in _COLUMNS),
        migrator.add_index("memories", ["session_id"], name="ix_memories_session_id"),
    )
    db.create_tables([_specializations(db)], safe=True)


def down(migrator: Any, db: Any) -> None:
    """Drop the table, the index and the columns (and the values they held)."""
    db.drop_tables([_specializations(db)], safe=True)
    migrator.migrate(
        migrator.drop_index("memories", "ix_memories_session_id"),
        *(migrator.drop_column(table, name) for table, name, _ in _COLUMNS),
    )
