"""Small builders and checks shared by the contract tests."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar, overload

import clonestore
from clonestore import Document, FaceModel, Memory, Session, User, VoiceModel
from clonestore.query import TRUE, OrderBy

E = TypeVar("E", bound=BaseException)

_serial = itertools.count(1)


def unique_email(prefix: str = "user") -> str:
    """An email address no other builder call returns."""
    return f"{prefix}{next(_serial)}@example.com"


def missing_id() -> str:
    """A valid id that no row has."""
    return str(uuid.uuid4())


def new_user(store: clonestore.Store, **fields: Any) -> User:
    values: dict[str, Any] = {"email": unique_email(), "name": "Ada"}
    values.update(fields)
    return store.users.create(**values)


def new_voice_model(store: clonestore.Store, user: User, **fields: Any) -> VoiceModel:
    values: dict[str, Any] = {"user_id": user.id, "name": "voice", "provider": "acme"}
    values.update(fields)
    return store.voice_models.create(**values)


def new_face_model(store: clonestore.Store, user: User, **fields: Any) -> FaceModel:
    values: dict[str, Any] = {"user_id": user.id, "name": "face", "provider": "acme"}
    values.update(fields)
    return store.face_models.create(**values)


def new_session(store: clonestore.Store, user: User, **fields: Any) -> Session:
    return store.sessions.create(user_id=user.id, **fields)


def new_document(store: clonestore.Store, user: User, **fields: Any) -> Document:
    values: dict[str, Any] = {"user_id": user.id, "filename": "notes.txt"}
    values.update(fields)
    return store.documents.create(**values)


def new_memory(
    store: clonestore.Store,
    user: User,
    embedding: Sequence[float] = (1.0, 0.0),
    content: str = "likes tea",
    **fields: Any,
) -> Memory:
    return store.memories.add(user.id, content, embedding, **fields)


def snapshot(store: clonestore.Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the store, read through the SPI, in id order."""
    return {
        name: store.backend.select(spec, TRUE, (OrderBy("id"),))
        for name, spec in store.tables.items()
    }


@contextmanager
def nothing_written(store: clonestore.Store) -> Iterator[None]:
    """Assert that the block leaves every table exactly as it was."""
    before = snapshot(store)
    yield
    after = snapshot(store)
    changed = sorted(name for name in before if before[name] != after[name])
    assert not changed, f"tables changed although the write was refused: {changed}"


def ids(items: Sequence[Any]) -> list[str]:
    """The ids of records (or rows), in order."""
    return [i["id"] if isinstance(i, dict) else i.id for i in items]


def id_sequence(*numbers: int) -> Callable[[], str]:
    """An id factory handing out the given numbers as UUIDs, in the given order."""
    pending = list(numbers)

    def next_id() -> str:
        return f"00000000-0000-4000-8000-{pending.pop(0):012x}"

    return next_id


def raises(error: type[E], action: Callable[[], Any], what: str = "") -> E:
    """Assert that ``action()`` raises ``error`` (``what`` names the case in failures)."""
    try:
        action()
    except error as exc:
        return exc
    except Exception as exc:
        raise AssertionError(
            f"{what}: expected {error.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise AssertionError(f"{what}: expected {error.__name__}, nothing was raised")


@overload
def refused(
    store: clonestore.Store, action: Callable[[], Any], *, what: str = ""
) -> clonestore.ValidationError: ...


@overload
def refused(
    store: clonestore.Store, action: Callable[[], Any], error: type[E], what: str = ""
) -> E: ...


def refused(
    store: clonestore.Store,
    action: Callable[[], Any],
    error: type[BaseException] = clonestore.ValidationError,
    what: str = "",
) -> BaseException:
    """Assert that ``action()`` raises ``error`` (ValidationError unless told) and leaves
    every table unchanged (``what`` names the case in failure messages)."""
    before = snapshot(store)
    caught = raises(error, action, what)
    after = snapshot(store)
    changed = sorted(name for name in before if before[name] != after[name])
    assert not changed, f"{what}: tables changed although the write was refused: {changed}"
    return caught


def typed(value: Any) -> Any:
    """``value`` with the type of every scalar made visible, so that 1 != 1.0 != True."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


class Abort(Exception):
    """Raised by :func:`aborted` to roll a transaction back."""


@contextmanager
def aborted(transaction: AbstractContextManager[Any]) -> Iterator[None]:
    """Run the block inside ``transaction``, then fail it so that it rolls back.

    An exception raised by the block itself propagates as usual.
    """
    try:
        with transaction:
            yield
            raise Abort
    except Abort:
        return


def race(count: int, work: Callable[[int], Any], timeout: float = 120) -> list[BaseException]:
    """Run ``work(i)`` for each ``i`` below ``count`` in threads released at once (a
    barrier); the exceptions they raised, for the test's own thread to report."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return errors
