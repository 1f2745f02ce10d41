"""The web front starts even when the admin API's address cannot be written (a full disk)."""

from __future__ import annotations

import asyncio

from tests.helpers import free_port
from watchdog.web.front import WebFront


def test_an_unwritable_admin_file_does_not_keep_the_front_from_serving(tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("a file where the folder should be")

    async def scenario() -> str:
        front = WebFront("127.0.0.1", free_port(), public=False)
        endpoint = await front.open(object(), blocker / "admin.json")  # type: ignore[arg-type]
        try:
            return endpoint.url
        finally:
            await front.close()

    url = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert url.startswith("http://127.0.0.1:")
    assert blocker.read_text() == "a file where the folder should be"
