"""The Character Creation Platform in one run: characters, gallery, queue, quota, statistics.

Runs on ``memory://`` unless given another store URL; on a file it starts by
erasing what an earlier run left, so it can be run again::

    python examples/character_platform/demo.py
    python examples/character_platform/demo.py sqlite:///platform.db
    python examples/character_platform/demo.py postgresql://user@localhost/platform
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the example package beside this file

from character_platform import CharacterPlatform, QuotaExceeded

import clonestore

DEMO_EMAILS = ("ada@example.com", "grace@example.com")
DEMO_TEMPLATES = ("Knight", "Pixel Hero")


def _start_clean(store: clonestore.Store) -> None:
    for email in DEMO_EMAILS:
        user = store.users.find_by_email(email)
        if user is not None:
            store.erase_user(user.id)
    for name in DEMO_TEMPLATES:
        template = store.character_templates.find_by_name(name)
        if template is not None:
            store.character_templates.delete(template.id)


def main(url: str = "memory://") -> None:
    """Run the scenario on ``url`` and print what happened."""
    with clonestore.open(url, plugins=[CharacterPlatform()]) as store:
        print(f"store: {store!r} backend={store.health()['backend']}")
        _start_clean(store)

        ada = store.users.create(email="ada@example.com", name="Ada")  # free tier
        grace = store.users.create(email="grace@example.com", name="Grace", subscription_tier="pro")
        print(
            f"users: {ada.name} ({ada.subscription_tier}), {grace.name} ({grace.subscription_tier})"
        )

        knight = store.character_templates.create(
            name="Knight",
            prompt="a knight in shining armour",
            style_type="fantasy",
            tags=["armour", "hero"],
        )
        store.character_templates.create(
            name="Pixel Hero", prompt="an 8-bit adventurer", style_type="pixel", tags=["hero"]
        )
        print(f"templates: {', '.join(t.name for t in store.character_templates.find_many())}")

        characters = store.characters
        sir_ada = characters.create_from_template(ada.id, knight.id, name="Sir Ada of Lovelace")
        mira = characters.create(
            user_id=ada.id,
            name="Mira the Fox",
            prompt="a fox spirit in a moonlit forest",
            style_type="anime",
            tags=["fox", "spirit"],
        )
        characters.create(
            user_id=ada.id, name="Draft", prompt="work in progress", style_type="cartoon"
        )
        bolt = characters.create(
            user_id=grace.id,
            name="Captain Bolt",
            prompt="a cartoon robot captain",
            style_type="cartoon",
            tags=["robot", "hero"],
        )
        nyx = characters.create(
            user_id=grace.id,
            name="Nyx",
            prompt="a realistic portrait of a night huntress",
            style_type="realistic",
            tags=["hero", "night"],
        )
        for character in (sir_ada, mira, bolt, nyx):
            characters.publish(character.id)
        mine = {"user_id__in": [ada.id, grace.id]}
        print(
            f"characters: {characters.count(where=mine)} created, "
            f"{characters.count(where={**mine, 'is_public': True})} public"
        )

        def show(label: str, page: clonestore.Page[object]) -> None:
            names = ", ".join(getattr(c, "name", "?") for c in page.items) or "(none)"
            print(f"gallery {label}: {names}")

        show("text='CAPTAIN'", characters.gallery("CAPTAIN"))
        found = characters.search_gallery("huntress")
        print("search 'huntress' (in a prompt):", ", ".join(f.record.name for f in found))
        show("style=cartoon", characters.gallery(style="cartoon"))
        show("tags any [fox, robot]", characters.gallery(tags=["fox", "robot"]))
        show("tags all [hero, night]", characters.gallery(tags=["hero", "night"], match="all"))
        page = characters.gallery(order_by="name", size=2)
        number = 1
        while True:
            show(f"by name, page {number}", page)
            if page.next_cursor is None:
                break
            page = characters.gallery(order_by="name", size=2, cursor=page.next_cursor)
            number += 1

        generations = store.generations
        queued = 0
        try:
            while True:
                generations.enqueue(ada.id, mira.id)
                queued += 1
        except QuotaExceeded as refused:
            print(
                f"quota: Ada queued {queued} generations, then refused: {refused} "
                f"(retry in {refused.retry_after / 3600:.1f} h)"
            )
        generations.enqueue(grace.id, bolt.id)
        generations.enqueue(grace.id, mira.id)  # Mira is public: Grace may use her
        print(f"queue: {generations.counts_by_status(**mine)}")

        finished = 0
        while (job := generations.claim_next(worker="gpu-1")) is not None:
            if finished % 3 == 2:
                generations.fail(job.id, "GPU out of memory")
            else:
                generations.complete(job.id, f"https://cdn.example.com/{job.id}.png")
            finished += 1
        print(f"worker gpu-1 finished {finished} jobs: {generations.counts_by_status(**mine)}")
        failed = generations.find_many(where={"status": "failed"})
        for job in failed:
            generations.retry(job.id)
        retried = generations.claim_next(worker="gpu-2")
        assert retried is not None
        generations.complete(retried.id, f"https://cdn.example.com/{retried.id}.png")
        print(
            f"retried {len(failed)} failed job(s); gpu-2 finished one: "
            f"{generations.counts_by_status(**mine)}"
        )

        for user in (ada, grace):
            stats = characters.user_statistics(user.id)
            print(
                f"stats {user.name}: {stats.characters} characters "
                f"({stats.public_characters} public), generations {dict(stats.generations)}, "
                f"quota {stats.used_today}/{stats.daily_limit} today"
            )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "memory://")
