"""The line database as the station's running panels consult it: the retest policy before
a unit is tested, and the line-wide claims (serial, certificate) before one is
provisioned. Blocking store calls run on one worker thread; a database that cannot be
reached is reported, never waited for.

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
from ate.provision.ledger import CertRow
from ate.store.api import (
    CertificateRow,
    InvariantViolation,
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

    # -- line-wide claims for the provisioning flow (ate.provision.flow.LineClaims) -------

    async def claim_serial(self, chip_id: str, serial: str) -> None:
        await self._claim(lambda s: s.claim_serial(chip_id, serial), f"serial {serial}")

    async def record_certificate(self, row: CertRow) -> None:
        line_row = CertificateRow(
            fingerprint=row.fingerprint,
            chip_id=row.chip_id,
            serial=row.serial,
            cert_serial=row.cert_serial,
            issuer=row.issuer,
            not_after=row.not_after,
            station=row.station,
            operator=row.operator,
            issued_at=row.issued_at,
        )
        await self._claim(lambda s: s.record_certificate(line_row), f"certificate of {row.serial}")

    async def _claim(self, fn: Callable[[Store], None], what: str) -> None:
        try:
            await self.call(fn)
        except InvariantViolation as exc:
            raise Refused(f"line database: {exc}") from None
        except (LineDown, StoreError) as exc:
            raise Refused(
                f"line database unreachable ({exc}): the {what} cannot be claimed line-wide, "
                "so the unit is not provisioned; run it again when the database is back"
            ) from None
