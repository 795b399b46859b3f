"""Fixtures for the spool, the store sink and the store CLI: a fresh SQLite file or a
fresh PostgreSQL database per test (dropped after), PostgreSQL reached through a TCP
proxy the test can cut, and unit records made by the real `build_record` from events."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ate.model.events import (
    Event,
    PanelEnded,
    PanelStarted,
    ProvisionAct,
    SlotEnded,
    SlotStarted,
    UnitIdentified,
)
from ate.model.limits import Limits
from ate.model.results import Measurement, SlotResult, StepResult, UnitIdentity
from ate.model.verdict import Verdict
from tests.store_spool.proxy import TcpProxy

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
SEQUENCE = {
    "name": "s3-devkit-functional",
    "version": "1.2.0",
    "file": "s3.yaml",
    "sha256": "ab" * 32,
    "test_firmware": {"file": "fw.bin", "sha256": "cd" * 32, "version": "1.0.0"},
}


@dataclass
class PgDatabase:
    name: str
    direct_url: str  # straight to the server, for the test's own checks and tampering


@pytest.fixture
def pg_database() -> Iterator[PgDatabase]:
    """A new, empty database on the local server, dropped after the test."""
    name = f"t_spool_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PgDatabase(name, f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    """A proxy to the PostgreSQL server, not yet listening: call restore() to open it."""
    p = TcpProxy(PG_HOST, PG_PORT)
    yield p
    p.close()


@dataclass
class Db:
    """A line database for one test: the URL the code under test uses, and a way for the
    test to run SQL on it directly (also while the proxy is cut)."""

    backend: str
    url: str
    proxy: TcpProxy | None = None
    direct_url: str = ""

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.backend == "postgresql":
            with psycopg.connect(self.direct_url, autocommit=True) as conn:
                cur = conn.execute(statement.replace("?", "%s"), params)
                return list(cur.fetchall()) if cur.description else []
        import sqlite3

        conn2 = sqlite3.connect(self.direct_url, isolation_level=None)
        try:
            cur2 = conn2.execute(statement, params)
            return list(cur2.fetchall())
        finally:
            conn2.close()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Db:
    path = tmp_path / "line" / "ate.db"
    path.parent.mkdir()
    return Db("sqlite", f"sqlite://{path}", direct_url=str(path))


@pytest.fixture
def pg_db(pg_database: PgDatabase, proxy: TcpProxy) -> Db:
    proxy.restore()
    url = f"postgresql://postgres@{proxy.host}:{proxy.port}/{pg_database.name}"
    return Db("postgresql", url, proxy, pg_database.direct_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Db:
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    result: Db = request.getfixturevalue(name)
    return result


# -- synthetic panels: real events, real build_record ----------------------------------------


@dataclass
class PanelMaker:
    """Makes the events of panels on a station, deterministically from a seed."""

    station: str = "st1"
    fixture: str = "sim-quad"
    operator: str = "op1"
    seed: int = 1
    made: int = 0
    macs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def mac(self, n: int) -> str:
        return f"24:0a:c4:{self.seed % 256:02x}:{n // 256 % 256:02x}:{n % 256:02x}"

    def panel(
        self,
        slots: int = 4,
        *,
        provision: bool = False,
        empty: tuple[int, ...] = (),
        fail: tuple[int, ...] = (),
        started_at: str | None = None,
        macs: dict[int, str] | None = None,
    ) -> list[Event]:
        """PanelStarted .. PanelEnded for one panel; `provision` adds a serial, a
        certificate and the ProvisionAct events of the passing units."""
        self.made += 1
        pid = f"{self.fixture}-20261121T07{self.made:04d}-{self.rng.randrange(16**4):04x}"
        when = started_at or f"2026-11-21T07:{self.made % 60:02d}:00.000+00:00"
        events: list[Event] = [
            PanelStarted(
                pid,
                self.fixture,
                self.station,
                self.operator,
                SEQUENCE,
                tuple(range(1, slots + 1)),
                when,
            )
        ]
        ends: list[Event] = []
        for slot in range(1, slots + 1):
            events.append(SlotStarted(pid, slot))
            if slot in empty:
                ends.append(SlotEnded(pid, SlotResult(slot, Verdict.EMPTY, "no board")))
                continue
            mac = (macs or {}).get(slot) or self.mac(len(self.macs) + 1)
            self.macs.append(mac)
            unit = UnitIdentity(mac, "esp32s3", "ate-testfw/1.0.0", 1)
            events.append(UnitIdentified(pid, slot, unit))
            failed = slot in fail
            vref = round(1.65 + self.rng.uniform(-0.05, 0.05), 4)
            steps = (
                StepResult(
                    0,
                    "boot_pin",
                    "gpio_read",
                    Verdict.PASS,
                    (Measurement("level", 1, "", Limits(expect=1), Verdict.PASS),),
                    duration_s=0.01,
                ),
                StepResult(
                    1,
                    "vref_divider",
                    "adc",
                    Verdict.FAIL if failed else Verdict.PASS,
                    (
                        Measurement(
                            "voltage",
                            2.5 if failed else vref,
                            "V",
                            Limits(1.55, 1.75, "V"),
                            Verdict.FAIL if failed else Verdict.PASS,
                        ),
                    ),
                    reason="voltage 2.5 V above 1.75 V" if failed else "",
                    started_s=0.01,
                    duration_s=0.02,
                ),
                StepResult(
                    2,
                    "fw_version",
                    "fw_version",
                    Verdict.PASS,
                    (Measurement("version", "1.0.0", "", None, Verdict.PASS),),
                ),
            )
            extra: dict[str, Any] = {}
            if provision and not failed:
                serial = f"AS3-{self.made:05d}-{slot:04d}-Z"
                fp = "sha256:" + secrets.token_hex(32)
                acts = [
                    {"act": "cert.issue", "kind": "intent", "status": "planned", "at": when},
                    {
                        "act": "cert.issue",
                        "kind": "outcome",
                        "status": "done",
                        "at": when,
                        "fingerprint": fp,
                    },
                    {"act": "efuse:sb.en", "kind": "outcome", "status": "done", "at": when},
                ]
                for a in acts:
                    detail = {
                        k: v for k, v in a.items() if k not in ("act", "kind", "status", "at")
                    }
                    events.append(ProvisionAct(pid, slot, a["act"], a["kind"], a["status"], detail))
                extra["provisioning"] = {
                    "serial": serial,
                    "state": "locked",
                    "certificate": {
                        "fingerprint": fp,
                        "cert_serial": secrets.token_hex(8),
                        "issuer": "CN=ate test CA",
                        "not_after": "2046-11-21T00:00:00+00:00",
                    },
                    "acts": acts,
                }
            verdict = Verdict.FAIL if failed else Verdict.PASS
            ends.append(
                SlotEnded(
                    pid,
                    SlotResult(
                        slot,
                        verdict,
                        "vref_divider failed" if failed else "",
                        unit,
                        steps,
                        0.5 + slot / 10,
                        extra,
                    ),
                )
            )
        events.extend(ends)
        verdicts = {e.result.slot: e.result.verdict for e in ends if isinstance(e, SlotEnded)}
        events.append(PanelEnded(pid, verdicts, 1.0, False))
        return events


def record_ids(events: list[Event]) -> list[str]:
    return [f"{e.panel_id}-slot{e.result.slot}" for e in events if isinstance(e, SlotEnded)]


@pytest.fixture
def panels() -> Callable[..., PanelMaker]:
    def make(**kw: Any) -> PanelMaker:
        return PanelMaker(**kw)

    return make
