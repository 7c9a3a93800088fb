"""A realistic demo data set: what ``clonestore seed`` writes.

A few specializations and, per demo user, a ready, active voice model and face
model, a few documents (processed into vectors, one failed), a few ended
sessions of turns with per-stage latencies and costs, and memories with
unit-length embeddings (episodes linked to the session they came from).
Everything goes through the repositories, so validation, plugins (audit,
cache) and the store's clock apply exactly as for application writes. The
data is drawn from a seeded random generator: the same ``seed`` gives the same
contents (ids and timestamps come from the store).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from clonestore._store import Store

__all__ = ["DEMO_EMAIL_DOMAIN", "SeedReport", "demo_email", "seed_demo"]

#: Demo users have emails ``demo-NNNN@`` this domain (reserved for examples).
DEMO_EMAIL_DOMAIN: Final = "example.com"

_FIRST: Final = (
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia", "Linus",
    "Frances", "John", "Hedy", "Dennis", "Katherine", "Tim", "Shafi", "Leslie", "Anita", "Niklaus",
)
_LAST: Final = (
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson",
    "Perlman", "Torvalds", "Allen", "Backus", "Lamarr", "Ritchie", "Johnson", "Berners-Lee",
)
_TRAITS: Final = (
    "curious", "patient", "witty", "direct", "warm", "precise", "playful", "calm", "bold",
)
_TAGS: Final = ("family", "work", "travel", "recipes", "health", "music", "books", "notes")
_DOCUMENTS: Final = (
    ("journal-2024.md", "text/markdown"),
    ("recipes.txt", "text/plain"),
    ("cv.pdf", "application/pdf"),
    ("letters.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("travel-notes.md", "text/markdown"),
)
_EXCHANGES: Final = (
    ("How was your weekend?", "Lovely, thanks: I finally finished the book on my nightstand."),
    ("What should I cook tonight?", "Your lemon risotto; you said it always cheers you up."),
    ("Remind me what we talked about last time.", "Your trip to Lisbon and the tram ride."),
    ("Tell me a story about grandpa.", "He once fixed a radio with a hairpin and a spoon."),
    ("Any advice for my interview?", "Breathe, listen fully, and tell the story of one project."),
    ("What's your favourite song?", "Anything with a cello in it, as you well know."),
    ("I had a rough day.", "I'm sorry. Do you want to talk about it, or hear something silly?"),
)
_MEMORIES: Final = (
    ("Loves lemon risotto", "preference"),
    ("Grew up near the sea", "fact"),
    ("Visited Lisbon in spring", "episode"),
    ("Sister is called Maya", "relationship"),
    ("Prefers mornings for hard work", "preference"),
    ("Plays the cello on Sundays", "fact"),
    ("Interview at the museum next week", "episode"),
)


_SPECIALIZATIONS: Final = (
    ("storyteller", "Tells family stories in the person's own words"),
    ("cooking-coach", "Walks through the person's recipes step by step"),
    ("interview-prep", "Rehearses interviews with the person's advice"),
)


@attrs.frozen
class SeedReport:
    """How many rows of each kind :func:`seed_demo` wrote (``skipped``: users already there)."""

    users: int = 0
    skipped: int = 0
    voice_models: int = 0
    face_models: int = 0
    documents: int = 0
    sessions: int = 0
    turns: int = 0
    memories: int = 0
    specializations: int = 0


def demo_email(number: int) -> str:
    """The email of demo user ``number`` (0-based)."""
    return f"demo-{number:04d}@{DEMO_EMAIL_DOMAIN}"


def _embedding(rng: random.Random, dimensions: int) -> list[float]:
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    """A cost in whole micro-units between ``low`` and ``high`` (micro-dollars)."""
    return Decimal(rng.randint(low, high)).scaleb(-6)


def seed_demo(
    store: Store,
    users: int = 10,
    *,
    seed: int = 0,
    dimensions: int = 32,
    on_user: Callable[[int], None] | None = None,
) -> SeedReport:
    """Write ``users`` demo users with their models, documents, sessions and memories.

    Demo user ``n`` has email :func:`demo_email(n) <demo_email>`; a demo user
    already present is skipped, so seeding again adds only what is missing.
    Each user and everything they own is written in one transaction.
    ``on_user(n)`` is called after each user (for progress).
    """
    counts = dict.fromkeys(attrs.fields_dict(SeedReport), 0)
    for name, description in _SPECIALIZATIONS:
        if store.specializations.find_one(name=name) is None:
            store.specializations.create(
                name=name, description=description, model_path=f"specializations/{name}.bin"
            )
            counts["specializations"] += 1
    for number in range(users):
        rng = random.Random(f"{seed}:{number}")
        email = demo_email(number)
        if store.users.find_by_email(email) is not None:
            counts["skipped"] += 1
        else:
            with store.transaction():
                _seed_user(store, rng, number, email, dimensions, counts)
            counts["users"] += 1
        if on_user is not None:
            on_user(number)
    return SeedReport(**counts)


def _seed_user(
    store: Store,
    rng: random.Random,
    number: int,
    email: str,
    dimensions: int,
    counts: dict[str, int],
) -> None:
    now = store.clock()
    first = _FIRST[number % len(_FIRST)]
    last = _LAST[(number // len(_FIRST) + number) % len(_LAST)]
    user = store.users.create(
        email=email,
        name=f"{first} {last}",
        personality_traits=rng.sample(_TRAITS, 3),
        subscription_tier=rng.choice(("free", "free", "pro", "enterprise")),
        settings={"language": rng.choice(("en", "fr", "pt", "de")), "voice_speed": 1.0},
    )
    voice = store.voice_models.create(
        user_id=user.id,
        name=f"{first}'s voice",
        provider="elevenlabs",
        status="ready",
        quality_score=round(rng.uniform(0.7, 0.99), 3),
        external_voice_id=f"voice-{number:04d}",
        model_path=f"voices/{number:04d}/model.bin",
        sample_paths=[f"samples/{number:04d}/{i}.wav" for i in range(3)],
    )
    store.voice_models.activate(voice.id)
    face = store.face_models.create(
        user_id=user.id,
        name=f"{first}'s face",
        provider="d-id",
        status="ready",
        quality_score=round(rng.uniform(0.6, 0.95), 3),
        model_path=f"faces/{number:04d}/model.bin",
        resolution={"width": 512, "height": 512},
        reference_image_paths=[f"faces/{number:04d}/ref-{i}.jpg" for i in range(2)],
    )
    store.face_models.activate(face.id)
    counts["voice_models"] += 1
    counts["face_models"] += 1

    for index, (filename, content_type) in enumerate(rng.sample(_DOCUMENTS, 3)):
        document = store.documents.create(
            user_id=user.id,
            filename=filename,
            content_type=content_type,
            size_bytes=rng.randint(2_000, 900_000),
            text_content=f"{first}'s {filename}: notes kept for the clone.",
            tags=rng.sample(_TAGS, 2),
            storage_path=f"documents/{number:04d}/{filename}",
            uploaded_at=now - timedelta(days=rng.randint(5, 60)),
        )
        store.documents.update_status(document.id, "processing")
        if index == 2 and rng.random() < 0.3:
            store.documents.update_status(
                document.id, "failed", error_message="could not extract text"
            )
        else:
            chunks = rng.randint(2, 12)
            store.documents.update_status(document.id, "completed", chunk_count=chunks)
            store.documents.set_vector_ids(
                document.id, [f"vec-{document.id[:8]}-{c}" for c in range(chunks)]
            )
        counts["documents"] += 1

    sessions = []
    for _ in range(rng.randint(2, 3)):
        session = store.sessions.create(
            user_id=user.id,
            voice_model_id=voice.id,
            face_model_id=face.id,
            llm_provider=rng.choice(("openai", "anthropic", "mistral")),
            tts_provider="elevenlabs",
            started_at=now - timedelta(days=rng.randint(0, 30), minutes=rng.randint(0, 600)),
            metadata={"client": rng.choice(("ios", "android", "web")), "demo": True},
        )
        for question, answer in rng.sample(_EXCHANGES, rng.randint(3, 6)):
            store.sessions.add_turn(
                session.id,
                user_transcript=question,
                llm_response=answer,
                asr_latency_ms=rng.randint(80, 250),
                rag_latency_ms=rng.randint(20, 120),
                llm_latency_ms=rng.randint(250, 1400),
                tts_latency_ms=rng.randint(90, 400),
                asr_cost=_money(rng, 100, 600),
                llm_cost=_money(rng, 800, 9000),
                tts_cost=_money(rng, 300, 2500),
                interrupted=rng.random() < 0.1,
            )
            counts["turns"] += 1
        store.sessions.end(session.id)
        sessions.append(session.id)
        counts["sessions"] += 1

    for content, memory_type in rng.sample(_MEMORIES, 4):
        store.memories.add(
            user.id,
            content,
            _embedding(rng, dimensions),
            memory_type=memory_type,
            importance=round(rng.uniform(0.2, 1.0), 2),
            tags=rng.sample(_TAGS, 1),
            # An episode is remembered from a conversation.
            session_id=rng.choice(sessions) if memory_type == "episode" else None,
        )
        counts["memories"] += 1
