"""0001: the clone domain schema (users, models, sessions, turns, documents, memories).

Frozen at this version: the tables are declared here as they were, not
imported from ``clonestore.records``. Unique constraints hold among live rows
only, so they are partial indexes (``WHERE deleted_at IS NULL``; one active
model per user: ``WHERE is_active AND deleted_at IS NULL``).
"""

from __future__ import annotations

from typing import Any

from peewee import Model, ModelIndex

from clonestore_peewee.sql._fields import (
    BoolField,
    DatetimeField,
    FloatField,
    IdField,
    IntField,
    JsonField,
    ListField,
    MoneyField,
    TextField,
    VectorField,
)


def _models(db: Any) -> list[type[Model]]:
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Users(Base):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        deleted_at = DatetimeField(null=True)
        email = TextField()
        email_key = TextField()
        name = TextField()
        personality_traits = ListField()
        subscription_tier = TextField()
        settings = JsonField()

        class Meta:
            table_name = "users"

    Users.add_index(
        ModelIndex(
            Users,
            [Users.email_key],
            unique=True,
            where=Users.deleted_at.is_null(),
            name="uq_users_email_key",
        )
    )
    Users.add_index(ModelIndex(Users, [Users.deleted_at], name="ix_users_deleted_at"))

    class VoiceModels(Base):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        deleted_at = DatetimeField(null=True)
        user_id = IdField()
        name = TextField()
        provider = TextField()
        status = TextField()
        quality_score = FloatField(null=True)
        is_active = BoolField()
        settings = JsonField()
        external_voice_id = TextField(null=True)
        sample_paths = ListField()
        deleted_by_cascade = IdField(null=True)

        class Meta:
            table_name = "voice_models"

    VoiceModels.add_index(
        ModelIndex(
            VoiceModels,
            [VoiceModels.user_id],
            unique=True,
            where=VoiceModels.is_active & VoiceModels.deleted_at.is_null(),
            name="uq_voice_models_user_id_is_active",
        )
    )
    VoiceModels.add_index(
        ModelIndex(
            VoiceModels,
            [VoiceModels.user_id, VoiceModels.is_active],
            name="ix_voice_models_user_id_is_active",
        )
    )

    class FaceModels(Base):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        deleted_at = DatetimeField(null=True)
        user_id = IdField()
        name = TextField()
        provider = TextField()
        status = TextField()
        quality_score = FloatField(null=True)
        is_active = BoolField()
        settings = JsonField()
        model_path = TextField(null=True)
        reference_image_paths = ListField()
        deleted_by_cascade = IdField(null=True)

        class Meta:
            table_name = "face_models"

    FaceModels.add_index(
        ModelIndex(
            FaceModels,
            [FaceModels.user_id],
            unique=True,
            where=FaceModels.is_active & FaceModels.deleted_at.is_null(),
            name="uq_face_models_user_id_is_active",
        )
    )
    FaceModels.add_index(
        ModelIndex(
            FaceModels,
            [FaceModels.user_id, FaceModels.is_active],
            name="ix_face_models_user_id_is_active",
        )
    )

    class Sessions(Base):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        user_id = IdField()
        voice_model_id = IdField(null=True)
        face_model_id = IdField(null=True)
        state = TextField()
        started_at = DatetimeField()
        ended_at = DatetimeField(null=True)
        total_turns = IntField()
        last_turn_index = IntField()
        total_latency_ms = IntField()
        total_cost = MoneyField()
        metadata = JsonField()

        class Meta:
            table_name = "sessions"

    Sessions.add_index(
        ModelIndex(
            Sessions,
            [Sessions.user_id, Sessions.started_at],
            name="ix_sessions_user_id_started_at",
        )
    )
    Sessions.add_index(ModelIndex(Sessions, [Sessions.started_at], name="ix_sessions_started_at"))

    class Turns(Base):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        session_id = IdField()
        user_id = IdField()
        turn_index = IntField()
        user_transcript = TextField()
        llm_response = TextField()
        asr_latency_ms = IntField()
        rag_latency_ms = IntField()
        llm_latency_ms = IntField()
        tts_latency_ms = IntField()
        asr_cost = MoneyField()
        llm_cost = MoneyField()
        tts_cost = MoneyField()
        interrupted = BoolField()
        metadata = JsonField()

        class Meta:
            table_name = "turns"

    Turns.add_index(
        ModelIndex(
            Turns,
            [Turns.session_id, Turns.turn_index],
            unique=True,
            where=None,
            name="uq_turns_session_id_turn_index",
        )
    )
    Turns.add_index(ModelIndex(Turns, [Turns.user_id], name="ix_turns_user_id"))

    class Documents(Base):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        deleted_at = DatetimeField(null=True)
        user_id = IdField()
        filename = TextField()
        content_type = TextField()
        size_bytes = IntField()
        text_content = TextField(null=True)
        chunk_count = IntField()
        status = TextField()
        vector_ids = ListField()
        tags = ListField()
        storage_path = TextField(null=True)
        error_message = TextField(null=True)
        uploaded_at = DatetimeField()
        processed_at = DatetimeField(null=True)
        deleted_by_cascade = IdField(null=True)

        class Meta:
            table_name = "documents"

    Documents.add_index(ModelIndex(Documents, [Documents.user_id], name="ix_documents_user_id"))
    Documents.add_index(
        ModelIndex(
            Documents,
            [Documents.uploaded_at],
            name="ix_documents_uploaded_at",
        )
    )
    Documents.add_index(ModelIndex(Documents, [Documents.status], name="ix_documents_status"))

    class Memories(Base):
        id = IdField(primary_key=True)
        created_at = DatetimeField()
        updated_at = DatetimeField()
        version = IntField()
        deleted_at = DatetimeField(null=True)
        user_id = IdField()
        content = TextField()
        embedding = VectorField()
        memory_type = TextField()
        importance = FloatField()
        session_id = IdField(null=True)
        tags = ListField()
        metadata = JsonField()
        deleted_by_cascade = IdField(null=True)

        class Meta:
            table_name = "memories"

    Memories.add_index(ModelIndex(Memories, [Memories.user_id], name="ix_memories_user_id"))

    return [Users, VoiceModels, FaceModels, Sessions, Turns, Documents, Memories]


def up(migrator: Any, db: Any) -> None:
    """Create the tables and their indexes."""
    db.create_tables(_models(db), safe=True)


def down(migrator: Any, db: Any) -> None:
    """Drop the tables (and with them every row)."""
    db.drop_tables(_models(db), safe=True)
