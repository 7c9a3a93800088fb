"""The Studio end to end in a real headless Chromium (Debian's package, through
Playwright): a session page renders its timeline, a link leads to the user's page,
and the screenshot shows a drawn page. Two page loads, to keep CI lean.

Set ``CLONESTORE_STUDIO_SCREENSHOT=docs/studio.png`` to refresh the README's picture.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import clonestore
from clonestore._demo import demo_email, seed_demo
from clonestore.studio import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def studio_url() -> Iterator[tuple[str, clonestore.Store]]:
    """A Studio served by uvicorn on a free loopback port, over 8 demo users."""
    import uvicorn

    store = clonestore.open("memory://", plugins=["cache", "ratelimit", "audit"])
    seed_demo(store, 8, dimensions=8)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the Studio did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()


def _png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the decoded image rows hold."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, offset = b"", 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        kind = data[offset + 4:offset + 8]
        if kind == b"IDAT":
            idat += data[offset + 8:offset + 8 + length]
        offset += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_the_studio_renders_in_chromium(
    studio_url: tuple[str, clonestore.Store], tmp_path: Path
) -> None:
    """In headless Chromium a session page draws its timeline bars, its user link leads to
    the user's page with related rows, and the screenshot is a full, non-blank page."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run sh tools/test-servers.sh (README command 2 does)")
    from playwright.sync_api import sync_playwright

    base, store = studio_url
    user = store.users.find_by_email(demo_email(1))
    assert user is not None
    session = store.sessions.find_many(where={"user_id": user.id}, order_by="-total_turns")[0]
    shot = tmp_path / "studio.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/t/sessions/{session.id}")
            assert page.locator("#timeline").is_visible()
            bars = page.locator(".timeline .bar")
            assert bars.count() == session.total_turns
            assert bars.first.bounding_box()["width"] > 20  # laid out, not empty
            page.screenshot(path=str(shot))
            page.click(f'a[href="/t/users/{user.id}"]')
            page.wait_for_url(f"{base}/t/users/{user.id}")
            assert page.locator("h2", has_text="Sessions").is_visible()
            assert page.locator(f'a[href="/t/sessions/{session.id}"]').count() == 1
        finally:
            browser.close()
    width, height, colours = _png_size_and_colours(shot.read_bytes())
    assert (width, height) == (1280, 800)
    assert colours > 50, "the screenshot is (nearly) blank"
    target = os.environ.get("CLONESTORE_STUDIO_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
