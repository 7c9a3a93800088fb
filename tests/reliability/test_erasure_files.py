"""Erasure on SQLite leaves nothing readable in the files: after erase_user, none of the
user's email, name, transcripts, document text, memory content or embedding is in the
bytes of the database file, its write-ahead log or the sqlite-vec tables within."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import clonestore

from .test_erasure import PLUGINS, _populate

#: The erased user's values, each unique enough to find in raw bytes.
SECRETS = {
    "email": "zorblax.erased@example.com",
    "name": "Zorblax Quuxington",
    "transcript": "my private transcript xyzzy",
    "answer": "the clone's private answer plugh",
    "document": "private document text frobozz",
    "memory": "private memory content grue",
}
EMBEDDING = [0.123456789, -0.987654321, 0.5555555, 0.31415926]


def _leftovers(path: Path) -> dict[str, list[str]]:
    """Per file of the database (main, -wal, -shm), the secrets found in its bytes."""
    needles = {k: v.encode() for k, v in SECRETS.items()}
    needles["embedding float32"] = np.asarray(EMBEDDING, "<f4").tobytes()
    needles["embedding float64"] = np.asarray(EMBEDDING, "<f8").tobytes()
    found = {}
    for file in sorted(path.parent.glob(path.name + "*")):
        data = file.read_bytes()
        found[file.name] = [name for name, needle in needles.items() if needle in data]
    return found


@pytest.mark.parametrize("extension", [True, False], ids=["sqlite-vec", "portable"])
def test_erased_data_is_not_in_the_database_files(tmp_path: Path, extension: bool) -> None:
    """With every plugin, 40 other users around and the user's rows written, updated and
    read, erase_user leaves none of the user's values in the database file, its WAL
    (checkpointed and truncated) or the vec0 tables; the other users' data stays."""
    path = tmp_path / "erase.db"
    flag = "" if extension else "?vector_extension=false"
    with clonestore.open(f"sqlite:///{path}{flag}", plugins=PLUGINS) as store:
        for i in range(40):
            other = store.users.create(email=f"other{i}@example.com", name=f"Other {i}")
            store.memories.add(other.id, f"other memory {i}", [1.0 + i, 2.0, 3.0, 4.0])
        user = _populate(store, SECRETS["email"], SECRETS["name"])
        session = store.sessions.create(user_id=user.id)
        store.sessions.add_turn(session.id, user_transcript=SECRETS["transcript"],
                                llm_response=SECRETS["answer"])
        store.documents.create(user_id=user.id, filename="notes.txt",
                               text_content=SECRETS["document"])
        store.memories.add(user.id, SECRETS["memory"], EMBEDDING)
        store.memories.similar(user.id, EMBEDDING)
        assert any(_leftovers(path).values())  # the values are there to be found
        store.erase_user(user.id)
        assert _leftovers(path) == {f.name: [] for f in tmp_path.glob("erase.db*")}
        assert store.users.count() == 40
        assert store.memories.similar(store.users.find_many()[0].id, [1.0, 2.0, 3.0, 4.0])
    assert _leftovers(path) == {f.name: [] for f in tmp_path.glob("erase.db*")}
