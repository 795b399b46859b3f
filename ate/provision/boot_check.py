"""The boot check after lock-down: reset the locked unit into its production firmware and
read its boot banner on the UART (the line firmware/test_fw/PROVISIONING.md asks every
production app to print), then judge it against what the station provisioned.

    ATE-PROD version=1.4.2 serial=AS3-7K2M9-QXH4-Z cert=sha256:<hex> key=sha256:<hex> sb=1 fe=1

Owns the banner's syntax (`parse_banner`), the wait for it (`observe_boot`) and the
judgement (`judge`). May import ate.drivers (line client) and the standard library.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ate.drivers.line_client import LineClient

BANNER_PREFIX = "ATE-PROD"
FIELDS = ("version", "serial", "cert", "key", "sb", "fe")
_VALUE = re.compile(r"[\x21-\x7e]{1,80}")
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")
# What a chip prints when it will not start the app (ROM, ESP-IDF bootloader): seen once,
# the chip is only going to repeat it, so the wait ends there.
_FATAL = re.compile(
    r"secure boot check fail|secure_boot_v2:|invalid header|invalid magic byte|"
    r"image corrupt|Checksum failed|Image hash failed|not bootable|partition table corrupt"
)
_CONSOLE_KEEP = 40  # lines of console kept for the reason and the record


class BannerError(ValueError):
    """A line that starts like the banner but breaks its syntax."""


@dataclass(frozen=True, slots=True)
class Banner:
    fields: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.fields[name]


def parse_banner(line: str) -> Banner | None:
    """The banner's fields, None for a line that is not the banner; BannerError for a
    banner with a missing, repeated, unknown or malformed field."""
    words = line.strip().split(" ")
    if not words or words[0] != BANNER_PREFIX:
        return None
    fields: dict[str, str] = {}
    for word in words[1:]:
        name, eq, value = word.partition("=")
        if not eq or name not in FIELDS:
            raise BannerError(f"banner field {word[:24]!r} is not one of {', '.join(FIELDS)}")
        if name in fields:
            raise BannerError(f"banner field {name} appears twice")
        if not _VALUE.fullmatch(value):
            raise BannerError(f"banner field {name} has no printable value")
        fields[name] = value
    missing = [f for f in FIELDS if f not in fields]
    if missing:
        raise BannerError(f"banner lacks {', '.join(missing)}")
    for flag in ("sb", "fe"):
        if fields[flag] not in ("0", "1"):
            raise BannerError(f"banner field {flag} is {fields[flag]!r}, not 0 or 1")
    return Banner(fields)


@dataclass(frozen=True, slots=True)
class BootObservation:
    banner: Banner | None
    console: tuple[str, ...]  # the last lines the unit printed
    why: str  # empty when a banner was read


async def observe_boot(
    endpoint: str,
    reset: Callable[[], Awaitable[None]],
    *,
    timeout: float,
    baud: int = 115200,
) -> BootObservation:
    """Open the unit's UART, reset it (`reset`), and read until its banner, a line that
    says it will not boot, or `timeout`. DeviceGone when the port cannot be opened."""
    console: list[str] = []
    done: asyncio.Future[BootObservation] = asyncio.get_running_loop().create_future()

    def on_log(text: str) -> None:
        console.append(text)
        del console[:-_CONSOLE_KEEP]
        if done.done():
            return
        try:
            banner = parse_banner(text)
        except BannerError as exc:
            done.set_result(BootObservation(None, tuple(console), f"malformed banner: {exc}"))
            return
        if banner is not None:
            done.set_result(BootObservation(banner, tuple(console), ""))
        elif _FATAL.search(text):
            done.set_result(BootObservation(None, tuple(console), f"the unit did not boot: {text}"))

    client = await LineClient.open(endpoint, baud, name="boot-check", on_log=on_log)
    try:
        await reset()
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            return BootObservation(
                None, tuple(console), f"no {BANNER_PREFIX} banner within {timeout:g} s"
            )
    finally:
        await client.close()


def judge(banner: Banner, expected: Mapping[str, str]) -> list[str]:
    """Each banner field that differs from `expected` (field -> value), as a sentence."""
    problems = []
    for name, want in expected.items():
        got = banner[name]
        if got != want:
            problems.append(f"{name} is {got}, the station provisioned {want}")
    for name in ("cert", "key"):
        if name not in expected and not _FINGERPRINT.fullmatch(banner[name]):
            problems.append(f"{name} is {banner[name]}, not a sha256 fingerprint")
    return problems
