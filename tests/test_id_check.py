"""The id check answers the same with its memo of recently valid ids as without it."""

from __future__ import annotations

import uuid

import pytest

from clonestore import ValidationError, schema
from clonestore.schema import Column, check

ID = Column(name="id", kind="id")


def test_a_valid_id_is_accepted_every_time_and_returned_unchanged() -> None:
    """A valid id passes on first sight and again from the memo, as the same string."""
    value = str(uuid.uuid4())
    assert check(ID, value) is value
    assert value in schema._VALID_IDS
    assert check(ID, value) is value


@pytest.mark.parametrize(
    "bad",
    ["", "A" * 129, "new\nline", 5, None, b"x", ["x"], {"x": 1}],
    ids=["empty", "long", "control", "int", "none", "bytes", "list", "dict"],
)
def test_invalid_ids_are_refused_whatever_the_memo_holds(bad: object) -> None:
    """Invalid values (unhashable ones included) raise ValidationError, never TypeError."""
    check(ID, str(uuid.uuid4()))
    with pytest.raises(ValidationError):
        check(ID, bad)


def test_a_control_character_or_overlong_twin_of_a_valid_id_is_refused() -> None:
    """Only the exact string is remembered: its newline-ended or overlong twins are not ids."""
    value = "x" * 128
    check(ID, value)
    for twin in (value + "\n", value + "x", "\x00" + value[1:]):
        with pytest.raises(ValidationError):
            check(ID, twin)


def test_the_memo_is_bounded() -> None:
    """However many ids pass, the memo never holds more than its bound."""
    for _ in range(schema._VALID_IDS_MAX + 10):
        check(ID, str(uuid.uuid4()))
    assert len(schema._VALID_IDS) <= schema._VALID_IDS_MAX
