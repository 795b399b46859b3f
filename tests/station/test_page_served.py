"""The station serves the operator's page from its own event loop when the station file
asks for it: the page, its snapshot with this station's fixtures and their panel
verdicts, read over real HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

from tests.station.conftest import running, wait_status, write_station


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


async def test_the_station_serves_its_page(tmp_path: Path) -> None:
    path = write_station(tmp_path, page={"host": "127.0.0.1", "port": 0, "lang": "zh"})
    async with running(path) as station:
        assert station.page is not None and station.view is not None
        await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        status, html = await asyncio.to_thread(_get, station.page.url)
        assert status == 200 and "<html" in html
        status, body = await asyncio.to_thread(_get, station.page.url + "snapshot")
        snap = json.loads(body)
        assert status == 200
        assert snap["station"] == "st1"
        text = json.dumps(snap, ensure_ascii=False)
        assert "fx1" in text and "PASS" in text
        # the header's line database state follows the store sink (records delivered)
        async with asyncio.timeout(30):
            while station.view.database != "online":
                await station.view.changed(station.view.version)
        assert station.view.spool == 0
    assert station.page.task.done()  # closed with the station
