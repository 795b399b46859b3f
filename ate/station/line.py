"""The line database as the station's running panels consult it: the retest policy before
a unit is tested, and, for the provisioning flow, the one owner of every unit's serial,
certificate and provisioning state (ate.provision.flow.LineStore): claims before anything
is signed or burned, the issuance guard before the CA signs, the state as it moves.
A station without a configured line database uses its local store file (the same
interface, `ate.cli.store_cmds.default_db_url`). Blocking store calls run on one worker
thread; a database that cannot be reached is reported, never waited for.

May import ate.mes, ate.store and ate.provision (the claims it makes for the flow).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ate.mes.gate import admit_through
from ate.mes.linedb import LineDbGate
from ate.model.verdict import Verdict
from ate.provision.flow import Refused
from ate.store.api import (
    CertificateRow,
    IssuancePolicy,
    ProvUnit,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
)

T = TypeVar("T")
_log = logging.getLogger(__name__)


class LineDown(StoreError):
    """The line database cannot be reached now (the reason says why)."""


class LineDb:
    def __init__(self, url: str, *, max_retests: int | None = None) -> None:
        self.url = url
        self.max_retests = max_retests
        self._store: Store | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="line-db")
        self.gate = LineDbGate(self.call, max_retests)
        self._admit = admit_through(self.gate, station="")

    def _open(self) -> Store:
        if self._store is None:
            self._store = open_store(self.url)
        return self._store

    def _run(self, fn: Callable[[Store], T]) -> T:
        try:
            return fn(self._open())
        except StoreUnavailable as exc:
            self._store = None  # reconnect next time
            raise LineDown(str(exc)) from None

    async def call(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, fn)

    async def admit(self, chip_id: str) -> tuple[Verdict, str] | None:
        """None: test the unit. Otherwise the slot's verdict without testing (the rules
        are the `linedb` MES driver's, ate/mes/linedb.py)."""
        return await self._admit(chip_id)

    def close(self) -> None:
        def shut() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._pool.submit(shut).result(timeout=10)
        self._pool.shutdown(wait=True)

    # -- the provisioning flow's store (ate.provision.flow.LineStore) ------------------------

    async def unit(self, chip_id: str) -> ProvUnit | None:
        return await self._ask(lambda s: s.prov_unit(chip_id), f"unit {chip_id}")

    async def certificate(self, chip_id: str) -> CertificateRow | None:
        return await self._ask(
            lambda s: s.certificate(chip_id), f"the certificate of unit {chip_id}"
        )

    async def advance(self, chip_id: str, state: str) -> str:
        return await self._ask(lambda s: s.advance(chip_id, state), f"unit {chip_id}'s state")

    async def claim_serial(self, chip_id: str, serial: str) -> None:
        await self._ask(lambda s: s.claim_serial(chip_id, serial), f"serial {serial}")

    async def claim_issuance(
        self, chip_id: str, *, station: str, lot: str, panel_id: str, tested: str
    ) -> None:
        await self._ask(
            lambda s: s.claim_issuance(
                chip_id, station=station, lot=lot, panel_id=panel_id, tested=tested
            ),
            f"the issuance for unit {chip_id}",
        )

    async def authorize_issue(
        self, chip_id: str, *, station: str, lot: str, panel_id: str, policy: IssuancePolicy
    ) -> None:
        await self._ask(
            lambda s: s.authorize_issue(
                chip_id, station=station, lot=lot, panel_id=panel_id, policy=policy
            ),
            f"the signature for unit {chip_id}",
        )

    async def record_certificate(self, row: CertificateRow) -> None:
        await self._ask(lambda s: s.record_certificate(row), f"certificate of {row.serial}")

    # -- read from a thread (the per-lot outputs after a panel) --------------------------------

    def units_now(self, lot: str | None) -> list[ProvUnit]:
        return self._now(lambda s: s.prov_units(lot))

    def certificates_now(self, lot: str | None) -> list[CertificateRow]:
        return self._now(lambda s: s.certificates(lot))

    def _now(self, fn: Callable[[Store], T]) -> T:
        result: T = self._pool.submit(self._run, fn).result()
        return result

    async def _ask(self, fn: Callable[[Store], T], what: str) -> T:
        try:
            return await self.call(fn)
        except LineDown as exc:
            raise Refused(
                f"line database unreachable ({exc}): {what} cannot be read or claimed "
                "line-wide, so the unit is not provisioned; run it again when the database "
                "is back"
            ) from None
        except StoreError as exc:  # a rule refused (InvariantViolation, IssuanceRefused)
            raise Refused(f"line database: {exc}") from None
