"""Typed calls to the test firmware on one DUT (PROTOCOL.md, test firmware commands)."""

from __future__ import annotations

from dataclasses import dataclass

from ate.drivers.line_client import DeviceError, LineClient, as_int, reply_field
from ate.protocol.lines import PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class DutInfo:
    proto: int
    firmware: str
    chip: str
    mac: str


class TestFirmwareClient:
    """The test firmware's commands as methods; timeouts per command family."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, line: LineClient, *, timeout: float = 0.5, attempts: int = 3) -> None:
        self.line = line
        self.timeout = timeout
        self.attempts = attempts

    async def call(
        self, command: str, *args: object, timeout: float | None = None
    ) -> dict[str, str]:
        return await self.line.request(
            command, *args, timeout=timeout or self.timeout, attempts=self.attempts
        )

    async def info(self) -> DutInfo:
        f = await self.call("info")
        info = DutInfo(
            proto=reply_field(f, "proto", int, "info"),
            firmware=reply_field(f, "fw", str, "info"),
            chip=reply_field(f, "chip", str, "info"),
            mac=reply_field(f, "mac", str.lower, "info"),
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
        return reply_field(await self.call("gpio.get", pin), "level", int, "gpio.get")

    async def i2c_probe(self, bus: int, address: int) -> bool:
        f = await self.call("i2c.probe", bus, f"0x{address:02x}")
        return reply_field(f, "ack", int, "i2c.probe") == 1

    async def i2c_read(self, bus: int, address: int, register: int, length: int) -> bytes:
        f = await self.call("i2c.read", bus, f"0x{address:02x}", f"0x{register:02x}", length)
        return reply_field(f, "data", bytes.fromhex, "i2c.read")

    async def spi_jedec(self, bus: int) -> int:
        return reply_field(await self.call("spi.jedec", bus), "id", as_int, "spi.jedec")

    async def spi_xfer(self, bus: int, tx: bytes) -> bytes:
        return reply_field(
            await self.call("spi.xfer", bus, tx.hex()), "data", bytes.fromhex, "spi.xfer"
        )

    async def adc_read_mv(self, channel: int, samples: int = 1) -> int:
        # An ADC sample takes tens of microseconds; allow for big averages.
        f = await self.call(
            "adc.read", channel, f"samples={samples}", timeout=self.timeout + samples * 0.001
        )
        return reply_field(f, "mv", int, "adc.read")

    async def power_mode(self, mode: str, hold_ms: int | None = None) -> None:
        if hold_ms is None:
            await self.call("power.mode", mode)
        else:
            await self.call("power.mode", mode, f"hold_ms={hold_ms}")

    async def rf_golden(self, channel: int, packets: int) -> dict[str, float]:
        # The golden board exchanges packets at about 1 ms each.
        f = await self.call("rf.golden", channel, packets, timeout=self.timeout + packets * 0.002)
        return {k: reply_field(f, k, float, "rf.golden") for k in ("rssi", "freq_offset", "per")}

    async def uptime_ms(self) -> int:
        return reply_field(await self.call("sys.uptime"), "ms", int, "sys.uptime")
