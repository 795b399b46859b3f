"""Reading a simulated unit's truth (its eFuses and flash) for provisioning tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ate.provision.identity import decode_usr_data
from ate.provision.journal import Journal
from ate.provision.partitions import read_secure_cert
from ate.sim import devkey
from ate.sim.prod_boot import CpuView
from ate.station.provisioning import local_store_url
from ate.store import Store, open_store
from ate.store.spool import default_spool_path

SECURE_CERT = (0xD000, 0x2000)


def usr_block(bench: Any, slot: int) -> bytes:
    """BLOCK_USR_DATA (block 3) as the chip holds it, in espefuse's byte order."""
    words = bench.efuses(slot)._block_words(3)
    return b"".join(int(w).to_bytes(4, "little") for w in words)


def usr_serial(bench: Any, slot: int) -> str | None:
    usr = decode_usr_data(usr_block(bench, slot))
    return usr.serial if usr else None


def openssl_verify(chain: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(chain), str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )


def secure_cert_of(bench: Any, slot: int) -> dict[str, bytes]:
    return read_secure_cert(bench.flash(slot).read(*SECURE_CERT))


def locked_fuses_ok(bench: Any, slot: int) -> None:
    e = bench.efuses(slot)
    assert e.field("SECURE_BOOT_EN")
    assert bin(int(e.field("SPI_BOOT_CRYPT_CNT"))).count("1") % 2 == 1
    assert e.field("ENABLE_SECURITY_DOWNLOAD")
    assert e.field("DIS_PAD_JTAG")


def device_key_scalar(bench: Any, slot: int) -> int | None:
    """The device key as the unit's app reads its dev_key partition: through the
    flash-encryption engine (the partition is flagged encrypted) once that is on."""
    server = bench.twin.sim.server(slot)
    view = CpuView(server.rom.loader.chip.name, bench.flash(slot), bench.efuses(slot))
    raw = view.read(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE, encrypted=True)
    return devkey.decode_record(raw)


@contextmanager
def station_state(state_dir: Path) -> Iterator[tuple[Store, Journal]]:
    """The station's line store (its local store file) and its journal (in the spool
    file), opened as a person would after the run."""
    store = open_store(local_store_url(state_dir))
    journal = Journal(default_spool_path(state_dir))
    try:
        yield store, journal
    finally:
        journal.close()
        store.close()
