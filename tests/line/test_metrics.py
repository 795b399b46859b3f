"""Prometheus metrics of a running station, scraped over real HTTP and read with
prometheus_client's own text parser: on the operator page's /metrics, and on a server of
their own when the page is off."""

from __future__ import annotations

import asyncio
import math
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.station.conftest import running, wait_status, write_station

FAULTY = {"slots": 2, "sim_slots": {2: {"faults": {"stuck_gpio": [{"pin": 5, "level": 0}]}}}}


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_metrics_on_the_page_after_a_panel(tmp_path: Path) -> None:
    path = write_station(tmp_path, [("fx1", dict(FAULTY))], page={"port": 0})
    async with running(path) as station:
        assert station.page is not None
        await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        m = await asyncio.to_thread(_scrape, station.page.url + "metrics")
        assert m[("ate_panels_total", (("fixture", "fx1"),))] == 1
        assert m[("ate_units_total", (("fixture", "fx1"), ("verdict", "PASS")))] == 1
        assert m[("ate_units_total", (("fixture", "fx1"), ("verdict", "FAIL")))] == 1
        fails = (("fixture", "fx1"), ("slot", "2"), ("verdict", "FAIL"))
        assert m[("ate_slot_failures_total", fails)] == 1
        assert (
            "ate_slot_failures_total",
            (("fixture", "fx1"), ("slot", "1"), ("verdict", "FAIL")),
        ) not in m
        assert m[("ate_units_per_hour", ())] > 0
        assert math.isnan(m[("ate_last_calibration_timestamp_seconds", (("fixture", "fx1"),))])
        assert ("ate_spool_backlog", ()) in m
        # the calibration work sets it; the scrape shows it
        station.around.metrics.set_calibration("fx1", 1_700_000_000.0)
        # the line database reached (records delivered): up, nothing waiting
        view = station.view
        assert view is not None
        async with asyncio.timeout(30):
            while view.database != "online" or view.spool:
                await view.changed(view.version)
        m = await asyncio.to_thread(_scrape, station.page.url + "metrics")
        assert m[("ate_line_database_up", ())] == 1
        assert m[("ate_spool_backlog", ())] == 0
        assert m[("ate_last_calibration_timestamp_seconds", (("fixture", "fx1"),))] == 1.7e9


async def test_metrics_on_their_own_port_without_a_page(tmp_path: Path) -> None:
    path = write_station(
        tmp_path, [("fx1", {"slots": 1})], metrics={"host": "127.0.0.1", "port": 0}
    )
    async with running(path) as station:
        assert station.page is None
        url = station.around.metrics_url
        assert url is not None
        await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        m = await asyncio.to_thread(_scrape, url)
        assert m[("ate_panels_total", (("fixture", "fx1"),))] == 1
        assert m[("ate_units_total", (("fixture", "fx1"), ("verdict", "PASS")))] == 1


async def test_two_stations_keep_their_own_registries(tmp_path: Path) -> None:
    from ate.station.metrics import StationMetrics

    a, b = StationMetrics("a"), StationMetrics("b")
    a.add_fixture("fx")
    a.panels.labels("fx").inc()
    assert b'fixture="fx"' not in b.render()
    assert b'ate_panels_total{fixture="fx"} 1.0' in a.render()
