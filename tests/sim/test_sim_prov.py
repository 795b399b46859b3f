"""prov.key, prov.csr and prov.sign on a simulated unit, through the real LineClient and
TestFirmwareClient over a pty: the key is made once and kept, the CSR and the proof
verify with cryptography, and the key record is where PROVISIONING.md says it is."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sim_helpers import FAST_BOARD, make_spec

from ate.config.fixture import Fixture
from ate.drivers.dut import TestFirmwareClient
from ate.drivers.esp import EspFlasher
from ate.drivers.fixture import LineFixtureController
from ate.drivers.line_client import DeviceError, LineClient
from ate.sim import devkey
from ate.sim.board import BoardSpec, SimBoard
from ate.sim.dut_server import DutServer
from ate.sim.fixture_twin import SimFixtureThread

ROOT = Path(__file__).resolve().parents[2]
TEST_FW = ROOT / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32s3.bin"
SUBJECT = "CN=ATE-S3-000123,O=Ünit Wörks GmbH,OU=Line 2,C=DE,serialNumber=S3-000123"
PAIRS = [
    (NameOID.COMMON_NAME, "ATE-S3-000123"),
    (NameOID.ORGANIZATION_NAME, "Ünit Wörks GmbH"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "Line 2"),
    (NameOID.COUNTRY_NAME, "DE"),
    (NameOID.SERIAL_NUMBER, "S3-000123"),
]


class Unit:
    """One simulated board without a ROM face, and the host's driver for it."""

    def __init__(self, server: DutServer, line: LineClient) -> None:
        self.server = server
        self.line = line
        self.fw = TestFirmwareClient(line, timeout=2.0, attempts=1)

    @property
    def board(self) -> SimBoard:
        assert self.server.board is not None
        return self.server.board

    async def power_cycle(self) -> None:
        self.server.power(False)
        await self.power_on()

    async def power_on(self) -> None:
        ready = self.line.expect_notice("READY")
        self.server.power(True)
        await asyncio.wait_for(ready, 5)


UnitFactory = Callable[..., Awaitable[Unit]]


@pytest.fixture
async def unit_factory() -> AsyncIterator[UnitFactory]:
    made: list[Unit] = []

    async def make(spec: BoardSpec | None = None) -> Unit:
        server = DutServer(SimBoard(spec or make_spec(boot_ms=0), seed=3, slot=1), "pty")
        await server.start()
        unit = Unit(server, await LineClient.open(server.endpoint))
        made.append(unit)
        await unit.power_on()
        return unit

    try:
        yield make
    finally:
        for u in made:
            await u.line.close()
            await u.server.stop()


@pytest.fixture
async def unit(unit_factory: UnitFactory) -> Unit:
    return await unit_factory()


def public_key(point: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


async def test_key_is_made_once_and_kept_across_power_cycles(unit: Unit) -> None:
    pub, new = await unit.fw.prov_key()
    assert new is True
    assert len(pub) == 65 and pub[0] == 0x04
    public_key(pub)  # a point on P-256
    assert await unit.fw.prov_key() == (pub, False)
    await unit.power_cycle()
    assert await unit.fw.prov_key() == (pub, False)
    # The stored record is the key reported, and nothing else is in the partition.
    stored = unit.board.key_store.read()
    d = devkey.decode_record(stored)
    assert d is not None and devkey.public_point(devkey.private_key(d)) == pub
    assert stored[devkey.RECORD_SIZE :] == b"\xff" * (devkey.DEV_KEY_SIZE - devkey.RECORD_SIZE)


async def test_two_units_have_different_keys(unit_factory: UnitFactory) -> None:
    a, b = await unit_factory(), await unit_factory()
    assert (await a.fw.prov_key())[0] != (await b.fw.prov_key())[0]


async def test_csr_verifies_and_carries_the_subject_in_order(unit: Unit) -> None:
    pub, _ = await unit.fw.prov_key()
    csr = x509.load_der_x509_csr(await unit.fw.prov_csr(SUBJECT))
    assert csr.is_signature_valid
    assert [(a.oid, a.value) for a in csr.subject] == PAIRS
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    assert key.public_numbers() == public_key(pub).public_numbers()
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert len(csr.extensions) == 0 and len(csr.attributes) == 0


async def test_signature_verifies_over_the_prefixed_challenge(unit: Unit) -> None:
    pub, _ = await unit.fw.prov_key()
    rng = random.Random(11)
    for size in (16, 32, 64):
        challenge = rng.randbytes(size)
        sig = await unit.fw.prov_sign(challenge)
        public_key(pub).verify(sig, b"ate-proof/1:" + challenge, ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):  # the device never signs the bare bytes
            public_key(pub).verify(sig, challenge, ec.ECDSA(hashes.SHA256()))


async def test_without_a_key_csr_and_sign_are_refused(unit: Unit) -> None:
    with pytest.raises(DeviceError, match=r"no device key: send prov\.key first") as exc:
        await unit.fw.prov_csr(SUBJECT)
    assert exc.value.code == "EARG"
    with pytest.raises(DeviceError, match="no device key") as exc:
        await unit.fw.prov_sign(bytes(16))
    assert exc.value.code == "EARG"
    # Nothing was stored by asking.
    assert unit.board.key_store.read() == b"\xff" * devkey.DEV_KEY_SIZE


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("prov.key", ("1",), "takes 0 arguments"),
        ("prov.csr", (), "needs subject="),
        ("prov.csr", ("subject=zz",), "must be hex"),
        ("prov.csr", ("subject=ff",), "not UTF-8"),
        ("prov.csr", ("subject=" + b"CN=a,CN=b".hex(),), "CN appears twice"),
        ("prov.csr", ("subject=" + b"DC=example".hex(),), "not allowed"),
        ("prov.csr", ("subject=" + b"CN=x,C=Germany".hex(),), "two capital letters"),
        ("prov.csr", ("subject=" + ("CN=" + "x" * 600).encode().hex(),), "at most 512 bytes"),
        ("prov.csr", (f"subject={b'CN=x'.hex()}", "x=1"), "unknown key"),
        ("prov.sign", (), "takes 1 arguments"),
        ("prov.sign", (bytes(15).hex(),), "16..64 bytes, got 15"),
        ("prov.sign", (bytes(65).hex(),), "at most 64 bytes"),
        ("prov.sign", ("xyz",), "must be hex"),
    ],
)
async def test_bad_arguments_are_earg(
    unit: Unit, command: str, args: tuple[str, ...], message: str
) -> None:
    await unit.fw.prov_key()
    with pytest.raises(DeviceError) as exc:
        await unit.fw.call(command, *args)
    assert exc.value.code == "EARG"
    assert message in exc.value.message


async def test_driver_checks_what_it_sends(unit: Unit) -> None:
    with pytest.raises(ValueError, match=r"16\.\.64 bytes"):
        await unit.fw.prov_sign(bytes(8))
    with pytest.raises(ValueError, match="subject"):
        await unit.fw.prov_csr("")


# ---- faults for the station's bad-input tests ---------------------------------------


async def test_fault_p384_csr(unit_factory: UnitFactory) -> None:
    u = await unit_factory(make_spec(boot_ms=0, faults={"prov_key_type": "p384"}))
    pub, _ = await u.fw.prov_key()
    csr = x509.load_der_x509_csr(await u.fw.prov_csr(SUBJECT))
    assert csr.is_signature_valid  # well-formed, just the wrong key
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1)
    assert len(pub) == 65  # prov.key still reports the P-256 device key


async def test_fault_subject_tamper(unit_factory: UnitFactory) -> None:
    u = await unit_factory(make_spec(boot_ms=0, faults={"prov_subject_tamper": True}))
    await u.fw.prov_key()
    csr = x509.load_der_x509_csr(await u.fw.prov_csr(SUBJECT))
    assert csr.is_signature_valid
    got = [(a.oid, a.value) for a in csr.subject]
    assert got[0] == (NameOID.COMMON_NAME, "ATE-S3-000123X")
    assert got[1:] == PAIRS[1:]


async def test_fault_bad_signature(unit_factory: UnitFactory) -> None:
    u = await unit_factory(make_spec(boot_ms=0, faults={"prov_bad_signature": True}))
    pub, _ = await u.fw.prov_key()
    challenge = random.Random(5).randbytes(32)
    sig = await u.fw.prov_sign(challenge)
    with pytest.raises(InvalidSignature):
        public_key(pub).verify(sig, b"ate-proof/1:" + challenge, ec.ECDSA(hashes.SHA256()))
    # The CSR is still made with the device key.
    csr = x509.load_der_x509_csr(await u.fw.prov_csr("CN=x"))
    assert csr.public_key().public_numbers() == public_key(pub).public_numbers()  # type: ignore[union-attr]


def test_fault_fields_are_validated() -> None:
    with pytest.raises(ValueError, match="prov_key_type"):
        make_spec(faults={"prov_key_type": "rsa"})
    spec = make_spec().with_faults({"prov_subject_tamper": True})
    assert spec.faults.prov_subject_tamper and not spec.faults.prov_bad_signature


# ---- the record in the unit's flash (the ROM face sees it) ---------------------------


def twin_fixture(tmp_path: Path, **simulation: Any) -> Fixture:
    (tmp_path / "board.yaml").write_text(yaml.safe_dump({**FAST_BOARD, "boot_ms": 0}))
    return Fixture.model_validate(
        {
            "fixture": "prov",
            "controller": {"driver": "sim"},
            "slots": [{"slot": 1, "port": "sim", "power": 1, "current_sense": 1}],
            "simulation": {"board": "board.yaml", "preflash": str(TEST_FW), **simulation},
        }
    )


async def test_key_record_sits_at_0xf000_and_survives_reflashing_the_app(
    tmp_path: Path,
) -> None:
    with SimFixtureThread(twin_fixture(tmp_path), tmp_path) as twin:
        ctrl = await LineFixtureController.open(twin.controller_endpoint)
        line = await LineClient.open(twin.endpoints[1])
        fw = TestFirmwareClient(line, timeout=2.0, attempts=1)
        try:
            ready = line.expect_notice("READY")
            await ctrl.power(1, True)
            await asyncio.wait_for(ready, 5)
            pub, new = await fw.prov_key()
            assert new
            await line.close()  # the port is esptool's now

            await ctrl.strap(1, "boot")
            lines: list[str] = []
            async with EspFlasher(twin.endpoints[1], chip="esp32s3", log=lines.append) as f:
                raw = await f.read(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE)
                await f.write([(0x10000, TEST_FW.read_bytes())])
            d = devkey.decode_record(raw)
            assert d is not None and devkey.public_point(devkey.private_key(d)) == pub
            # The app partition starts right after it; the sector before dev_key is free.
            server = twin.sim.server(1)
            assert server is not None and server.rom is not None
            flash = server.rom.loader.flash
            assert flash.read(devkey.DEV_KEY_OFFSET - 0x1000, 0x1000) == b"\xff" * 0x1000

            line = await LineClient.open(twin.endpoints[1])
            fw = TestFirmwareClient(line, timeout=2.0, attempts=1)
            ready = line.expect_notice("READY")
            await ctrl.strap(1, "run")
            await asyncio.wait_for(ready, 5)
            assert await fw.prov_key() == (pub, False)
            assert flash.read(devkey.DEV_KEY_OFFSET, devkey.RECORD_SIZE) == raw[:72]
        finally:
            await line.close()
            await ctrl.close()
