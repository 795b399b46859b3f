"""Typed calls to the test firmware on one DUT (PROTOCOL.md, test firmware commands)."""

from __future__ import annotations

from dataclasses import dataclass

from ate.drivers.line_client import DeviceError, LineClient, reply_field
from ate.protocol.fields import (
    as_blob,
    as_count,
    as_decimal,
    as_finite,
    as_hex_bytes,
    as_int,
    as_level,
    as_mac,
    as_text,
)
from ate.protocol.lines import PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class DutInfo:
    proto: int
    firmware: str
    chip: str
    mac: str


@dataclass(frozen=True, slots=True)
class RxCount:
    """rf.rx.stop: distinct test frames received, their mean RSSI (dBm), the sender's
    clock offset against the receiver's (ppm)."""

    frames: int
    rssi: float | None
    cfo: float | None


# The firmware's default interval between test frames, microseconds (PROTOCOL.md).
RF_INTERVAL_US = {"wifi": 1000, "ble": 20000}


class TestFirmwareClient:
    """The test firmware's commands as methods; timeouts per command family."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self,
        line: LineClient,
        *,
        timeout: float = 0.5,
        attempts: int = 3,
        crypto_s: float = 2.0,
    ) -> None:
        self.line = line
        self.timeout = timeout
        self.attempts = attempts
        # Extra time for key generation and signing (about 100 ms on an ESP32-S3, more
        # while the flash is busy storing the key).
        self.crypto_s = crypto_s

    async def call(
        self, command: str, *args: object, timeout: float | None = None
    ) -> dict[str, str]:
        return await self.line.request(
            command, *args, timeout=timeout or self.timeout, attempts=self.attempts
        )

    async def info(self) -> DutInfo:
        f = await self.call("info")
        info = DutInfo(
            proto=reply_field(f, "proto", as_decimal, "info"),
            firmware=reply_field(f, "fw", as_text, "info"),
            chip=reply_field(f, "chip", as_text, "info"),
            mac=reply_field(f, "mac", as_mac, "info"),
        )
        if info.proto != PROTOCOL_VERSION:
            raise DeviceError(
                "info",
                "EVERSION",
                f"firmware speaks protocol {info.proto}, ate speaks {PROTOCOL_VERSION}",
            )
        return info

    async def ping(self) -> None:
        await self.call("ping")

    async def gpio_mode(self, pin: int, mode: str) -> None:
        await self.call("gpio.mode", pin, mode)

    async def gpio_set(self, pin: int, level: int) -> None:
        await self.call("gpio.set", pin, level)

    async def gpio_get(self, pin: int) -> int:
        return reply_field(await self.call("gpio.get", pin), "level", as_level, "gpio.get")

    async def i2c_probe(self, bus: int, address: int) -> bool:
        f = await self.call("i2c.probe", bus, f"0x{address:02x}")
        return reply_field(f, "ack", as_level, "i2c.probe") == 1

    async def i2c_read(self, bus: int, address: int, register: int, length: int) -> bytes:
        f = await self.call("i2c.read", bus, f"0x{address:02x}", f"0x{register:02x}", length)
        return reply_field(f, "data", as_hex_bytes, "i2c.read")

    async def spi_jedec(self, bus: int) -> int:
        return reply_field(await self.call("spi.jedec", bus), "id", as_int, "spi.jedec")

    async def spi_xfer(self, bus: int, tx: bytes) -> bytes:
        return reply_field(
            await self.call("spi.xfer", bus, tx.hex()), "data", as_hex_bytes, "spi.xfer"
        )

    async def adc_read_mv(self, channel: int, samples: int = 1) -> int:
        # An ADC sample takes tens of microseconds; allow for big averages.
        f = await self.call(
            "adc.read", channel, f"samples={samples}", timeout=self.timeout + samples * 0.001
        )
        return reply_field(f, "mv", as_count, "adc.read")

    async def power_mode(self, mode: str, hold_ms: int | None = None) -> None:
        if hold_ms is None:
            await self.call("power.mode", mode)
        else:
            await self.call("power.mode", mode, f"hold_ms={hold_ms}")

    async def rf_golden(self, channel: int, packets: int) -> dict[str, float]:
        # The golden board exchanges packets at about 1 ms each.
        f = await self.call("rf.golden", channel, packets, timeout=self.timeout + packets * 0.002)
        return {
            k: reply_field(f, k, as_finite, "rf.golden") for k in ("rssi", "freq_offset", "per")
        }

    # ---- RF exchanges with the golden board (PROTOCOL.md "RF golden board") ------------

    async def rf_tx(
        self, mode: str, channel: int, count: int, interval_us: int | None = None
    ) -> int:
        """Send `count` ate test frames; the reply comes after the last one is out."""
        interval = interval_us or RF_INTERVAL_US[mode]
        args: list[object] = [mode, channel, count]
        if interval_us is not None:
            args.append(f"interval_us={interval_us}")
        f = await self.call("rf.tx", *args, timeout=self.timeout + count * interval * 1e-6 * 1.5)
        return reply_field(f, "sent", as_count, "rf.tx")

    async def rf_rx_start(self, mode: str, channel: int, sender: str | None = None) -> None:
        if sender is None:
            await self.call("rf.rx.start", mode, channel)
        else:
            await self.call("rf.rx.start", mode, channel, f"from={sender}")

    async def rf_rx_stop(self) -> RxCount:
        """What the receiver counted since rf.rx.start; fields the protocol leaves out
        (rssi with no frame, cfo with fewer than 3) are None, and a reply that gives them
        anyway, or lacks them, is EPROTO."""
        f = await self.call("rf.rx.stop")
        frames = reply_field(f, "frames", as_count, "rf.rx.stop")
        rssi = reply_field(f, "rssi", as_finite, "rf.rx.stop") if frames >= 1 else None
        cfo = reply_field(f, "cfo", as_finite, "rf.rx.stop") if frames >= 3 else None
        for key, allowed in (("rssi", frames >= 1), ("cfo", frames >= 3)):
            if key in f and not allowed:
                raise DeviceError(
                    "rf.rx.stop", "EPROTO", f"{key}= given with frames={frames}: not a reading"
                )
        return RxCount(frames, rssi, cfo)

    async def uptime_ms(self) -> int:
        return reply_field(await self.call("sys.uptime"), "ms", as_count, "sys.uptime")

    # ---- provisioning (PROTOCOL.md "Provisioning", PROVISIONING.md) -------------------

    async def prov_key(self) -> tuple[bytes, bool]:
        """Ensure the device key exists: (its public key as a 65-byte X9.62 uncompressed
        P-256 point, whether it was generated by this call)."""
        # Key generation and the flash write take ~100 ms on a chip.
        f = await self.call("prov.key", timeout=self.timeout + self.crypto_s)
        pub = reply_field(f, "pub", as_blob, "prov.key")
        new = reply_field(f, "new", as_level, "prov.key")
        if len(pub) != 65 or pub[0] != 0x04:
            raise DeviceError(
                "prov.key", "EPROTO", f"pub= is {len(pub)} bytes, not an uncompressed P-256 point"
            )
        if new not in (0, 1):
            raise DeviceError("prov.key", "EPROTO", f"new={new}: allowed are 0 and 1")
        return pub, new == 1

    async def prov_csr(self, subject: str) -> bytes:
        """A DER PKCS#10 request signed by the device key for `subject`, the RFC 4514-like
        text `CN=...,O=...,OU=...,C=...,serialNumber=...` (order as given)."""
        if not subject:
            raise ValueError("prov.csr needs a subject such as CN=...,O=...")
        f = await self.call(
            "prov.csr",
            f"subject={subject.encode('utf-8').hex()}",
            timeout=self.timeout + self.crypto_s,
        )
        return reply_field(f, "csr", as_blob, "prov.csr")

    async def prov_sign(self, challenge: bytes) -> bytes:
        """The device key's DER ECDSA-SHA256 signature over b"ate-proof/1:" + challenge."""
        if not 16 <= len(challenge) <= 64:
            raise ValueError(f"a challenge is 16..64 bytes, not {len(challenge)}")
        f = await self.call("prov.sign", challenge.hex(), timeout=self.timeout + self.crypto_s)
        return reply_field(f, "sig", as_blob, "prov.sign")
