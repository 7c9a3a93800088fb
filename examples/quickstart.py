"""A short conversation-clone scenario: store a person, their clone, a chat, and recall.

Runs on the embedded default (a SQLite file, ``clonestore.db`` in the current
directory) unless ``CLONESTORE_URL`` or the first argument names another store::

    python examples/quickstart.py                 # sqlite:///clonestore.db
    python examples/quickstart.py memory://       # in memory
"""

from __future__ import annotations

import sys
from decimal import Decimal

import clonestore


def main(url: str | None = None) -> None:
    with clonestore.open(url) as store:
        print(f"store: {store!r}")
        # Start from a clean slate so the example can be run again.
        previous = store.users.find_by_email("ada@example.com")
        if previous is not None:
            store.erase_user(previous.id)

        with store.context(actor_id="quickstart", request_id="req-1"):
            ada = store.users.create(
                email="Ada@Example.com",
                name="Ada Lovelace",
                personality_traits=["curious", "precise"],
                subscription_tier="pro",
                settings={"language": "en", "speaking_rate": 1.1},
            )
            voice = store.voice_models.create(
                user_id=ada.id, name="Ada (warm)", provider="elevenlabs", quality_score=0.93
            )
            store.voice_models.activate(voice.id)
            face = store.face_models.create(user_id=ada.id, name="Ada portrait", provider="d-id")
            store.face_models.activate(face.id)

            doc = store.documents.create(
                user_id=ada.id,
                filename="notes-on-the-analytical-engine.md",
                content_type="text/markdown",
                size_bytes=2048,
                tags=["engine", "notes"],
            )
            store.documents.update_status(doc.id, "processing")
            store.documents.set_vector_ids(doc.id, ["vec-1", "vec-2", "vec-3"])
            doc = store.documents.update_status(doc.id, "completed", chunk_count=3)

            store.memories.add(ada.id, "Prefers tea to coffee", [0.9, 0.1, 0.0])
            store.memories.add(ada.id, "Works on the Analytical Engine", [0.1, 0.9, 0.2])

            session = store.sessions.create(user_id=ada.id, voice_model_id=voice.id)
            for state in ("listening", "processing", "speaking", "listening"):
                store.sessions.update_state(session.id, state)
            store.sessions.add_turn(
                session.id,
                user_transcript="What are you working on?",
                llm_response="A machine that weaves algebraic patterns.",
                asr_latency_ms=120, rag_latency_ms=40, llm_latency_ms=380, tts_latency_ms=160,
                asr_cost=Decimal("0.0004"), llm_cost=Decimal("0.0021"), tts_cost=Decimal("0.0009"),
            )
            store.sessions.add_turn(
                session.id,
                user_transcript="Tea or coffee?",
                llm_response="Tea, always.",
                asr_latency_ms=110, rag_latency_ms=35, llm_latency_ms=300, tts_latency_ms=150,
                asr_cost=Decimal("0.0003"), llm_cost=Decimal("0.0015"), tts_cost=Decimal("0.0007"),
            )
            session = store.sessions.end(session.id)

        found = store.users.find_by_email("ADA@example.com")
        assert found is not None
        assert found.id == ada.id
        print(f"user:      {found.name} <{found.email}> tier={found.subscription_tier}")
        print(f"voice:     {store.voice_models.active_for(ada.id).name}")  # type: ignore[union-attr]
        print(f"face:      {store.face_models.active_for(ada.id).name}")  # type: ignore[union-attr]
        print(f"document:  {doc.filename} status={doc.status} chunks={doc.chunk_count}")
        full = store.sessions.get_with_turns(session.id)
        print(
            f"session:   {full.session.total_turns} turns, "
            f"average latency {full.session.average_latency_ms:.1f} ms, "
            f"cost ${full.session.total_cost}"
        )
        for turn in full.turns:
            print(f"  turn {turn.turn_index}: {turn.user_transcript!r} -> {turn.llm_response!r}"
                  f" ({turn.latency_ms} ms, ${turn.cost})")
        recalled = store.memories.similar(ada.id, [1.0, 0.0, 0.0], limit=1)[0]
        print(f"recall:    {recalled.memory.content!r} (cosine {recalled.score:.3f})")
        stats = store.sessions.user_statistics(ada.id)
        print(f"stats:     {stats.total_sessions} session(s), {stats.total_turns} turns, "
              f"${stats.total_cost} total")
        exported = store.export_user(ada.id)
        sizes = {k: len(v) for k, v in exported.items() if isinstance(v, list)}
        print(f"export:    {sizes}")
        print(f"health:    ok={store.health()['ok']} backend={store.health()['backend']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
