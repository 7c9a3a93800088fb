"""Characters, templates and the public gallery, on the backend under test."""

from __future__ import annotations

import pytest
from character_platform import Character

from clonestore import AlreadyExists, NotFound, Store, User, ValidationError


def _character(store: Store, owner: User, name: str, **fields: object) -> Character:
    values: dict[str, object] = {"prompt": f"a portrait of {name}", "style_type": "anime"}
    values.update(fields)
    character: Character = store.characters.create(user_id=owner.id, name=name, **values)
    return character


def test_create_validates_and_defaults(platform: Store, ada: User) -> None:
    """A new character is private, has no tags, and refuses unknown styles and owners."""
    mira = _character(platform, ada, "Mira")
    assert mira.is_public is False
    assert mira.tags == ()
    assert platform.characters.get(mira.id) == mira
    with pytest.raises(ValidationError, match="style_type"):
        _character(platform, ada, "Bad", style_type="watercolour")
    with pytest.raises(ValidationError, match="name"):
        _character(platform, ada, "")
    with pytest.raises(NotFound):
        platform.characters.create(
            user_id="00000000-0000-4000-8000-000000000000",
            name="X",
            prompt="p",
            style_type="anime",
        )


def test_templates_have_unique_names_ignoring_case(platform: Store, ada: User) -> None:
    """Template names are unique regardless of case, and a character can start from one."""
    knight = platform.character_templates.create(
        name="Knight", prompt="a knight in shining armour", style_type="fantasy", tags=["armour"]
    )
    with pytest.raises(AlreadyExists):
        platform.character_templates.create(name="KNIGHT", prompt="p", style_type="pixel")
    assert platform.character_templates.find_by_name("knight") == knight
    sir = platform.characters.create_from_template(ada.id, knight.id, name="Sir Ada")
    assert (sir.name, sir.prompt, sir.style_type, sir.tags) == (
        "Sir Ada",
        knight.prompt,
        "fantasy",
        ("armour",),
    )
    assert sir.template_id == knight.id


def test_gallery_shows_only_public_live_characters(platform: Store, ada: User, bob: User) -> None:
    """Private and soft-deleted characters stay out of the gallery; restore brings one back."""
    public = platform.characters.publish(_character(platform, ada, "Public").id)
    _character(platform, ada, "Private")
    gone = platform.characters.publish(_character(platform, bob, "Gone").id)
    platform.characters.delete(gone.id)
    assert [c.name for c in platform.characters.gallery().items] == ["Public"]
    platform.characters.restore(gone.id)
    assert [c.id for c in platform.characters.gallery().items] == [gone.id, public.id]


def test_gallery_text_search_is_literal_and_ignores_case(platform: Store, ada: User) -> None:
    """Text matches a literal substring of the name with casefold(); % and _ are not wildcards."""
    for name in ("Mira the BRAVE", "Brave_Heart", "100% Brave", "Straße Kid", "Timid"):
        platform.characters.publish(_character(platform, ada, name).id)

    def names(text: str) -> set[str]:
        return {c.name for c in platform.characters.gallery(text).items}

    assert names("brave") == {"Mira the BRAVE", "Brave_Heart", "100% Brave"}
    assert names("e_h") == {"Brave_Heart"}
    assert names("0% b") == {"100% Brave"}
    assert names("%") == {"100% Brave"}
    assert names("STRASSE") == {"Straße Kid"}  # casefold, not lower()
    assert names("nobody") == set()


def test_search_gallery_finds_words_in_name_prompt_and_tags(platform: Store, ada: User) -> None:
    """search_gallery finds a word in the prompt ('warrior'), the name or the tags, best
    first, public and live characters only, with the gallery's style and tag filters."""
    brave = _character(platform, ada, "Brave", prompt="A lone WARRIOR at dawn", tags=["hero"])
    named = _character(platform, ada, "Warrior Queen", prompt="a queen", style_type="fantasy")
    tagged = _character(platform, ada, "Kit", prompt="a fox", tags=["warrior"])
    hidden = _character(platform, ada, "Hidden", prompt="a warrior too")
    for character in (brave, named, tagged):
        platform.characters.publish(character.id)
    found = platform.characters.search_gallery("warrior")
    assert {f.record.id for f in found} == {brave.id, named.id, tagged.id}
    assert hidden.id not in {f.record.id for f in found}
    scores = [f.score for f in found]
    assert scores == sorted(scores, reverse=True)
    assert [f.record.id for f in platform.characters.search_gallery('"lone warrior"')] == [
        brave.id
    ]
    only = platform.characters.search_gallery("warrior", style="fantasy")
    assert [f.record.id for f in only] == [named.id]
    assert [f.record.id for f in platform.characters.search_gallery("warrior", tags=["hero"])] == [
        brave.id
    ]
    platform.characters.delete(tagged.id)
    assert tagged.id not in {f.record.id for f in platform.characters.search_gallery("warrior")}
    with pytest.raises(ValidationError):
        platform.characters.search_gallery("  ")


def test_gallery_filters_by_style_and_tags(platform: Store, ada: User) -> None:
    """Style takes one or several values; tags match any or all of the given ones."""
    specs = {
        "A": ("anime", ["hero", "sword"]),
        "B": ("pixel", ["hero"]),
        "C": ("anime", ["villain"]),
        "D": ("cartoon", ["sword", "hero", "hero"]),
    }
    for name, (style, tags) in specs.items():
        platform.characters.publish(_character(platform, ada, name, style_type=style, tags=tags).id)

    def names(**query: object) -> set[str]:
        return {c.name for c in platform.characters.gallery(**query).items}

    assert names(style="anime") == {"A", "C"}
    assert names(style=["anime", "pixel"]) == {"A", "B", "C"}
    assert names(tags=["sword", "villain"]) == {"A", "C", "D"}
    assert names(tags=["sword", "hero"], match="all") == {"A", "D"}
    assert names(style="anime", tags=["hero"]) == {"A"}
    with pytest.raises(ValidationError, match="style_type"):
        platform.characters.gallery(style="oil")
    with pytest.raises(ValidationError, match="match"):
        platform.characters.gallery(tags=["hero"], match="some")


def test_gallery_keyset_pages_cover_every_character_once(platform: Store, ada: User) -> None:
    """Following next_cursor visits every public character exactly once, newest first,
    even when characters are added between pages."""
    made = [platform.characters.publish(_character(platform, ada, f"C{i:02}").id) for i in range(7)]
    seen: list[Character] = []
    page = platform.characters.gallery(size=3)
    seen.extend(page.items)
    _character(platform, ada, "Late", is_public=True)  # newer: sorts before the cursor
    while page.next_cursor is not None:
        page = platform.characters.gallery(size=3, cursor=page.next_cursor)
        seen.extend(page.items)
    assert [c.id for c in seen] == [c.id for c in reversed(made)]
    by_name = platform.characters.gallery(order_by="name", size=100).items
    assert [c.name for c in by_name] == sorted(c.name for c in by_name)


def test_user_statistics_count_characters_and_generations(
    platform: Store, ada: User, bob: User
) -> None:
    """Statistics count the user's live characters, public ones, and generations by status."""
    mira = platform.characters.publish(_character(platform, ada, "Mira").id)
    _character(platform, ada, "Secret")
    platform.characters.delete(_character(platform, ada, "Deleted").id)
    _character(platform, bob, "Bob's")
    for _ in range(3):
        platform.generations.enqueue(ada.id, mira.id)
    platform.generations.enqueue(bob.id, mira.id)  # public: Bob may use it, on his quota
    job = platform.generations.claim_next("worker-1")
    assert job is not None
    platform.generations.fail(job.id, "GPU out of memory")
    stats = platform.characters.user_statistics(ada.id)
    assert (stats.characters, stats.public_characters) == (2, 1)
    assert stats.generations == {"pending": 2, "running": 0, "succeeded": 0, "failed": 1}
    assert (stats.total_generations, stats.used_today, stats.daily_limit) == (3, 3, 5)
    assert stats.remaining_today == 2


def test_export_and_erase_include_platform_rows(platform: Store, ada: User, bob: User) -> None:
    """export_user carries the user's characters and generations; erase_user removes them."""
    mira = platform.characters.publish(_character(platform, ada, "Mira").id)
    platform.generations.enqueue(ada.id, mira.id)
    bobs = _character(platform, bob, "Bob's own")
    exported = platform.export_user(ada.id)
    assert [c["name"] for c in exported["characters"]] == ["Mira"]
    assert [g["character_id"] for g in exported["generations"]] == [mira.id]
    platform.erase_user(ada.id)
    assert platform.characters.count(with_deleted=True) == 1
    assert platform.generations.count() == 0
    assert platform.characters.get(bobs.id) == bobs
