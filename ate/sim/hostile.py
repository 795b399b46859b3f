"""A hostile DUT: firmware that lies, floods or reboots, to prove verdicts hold.

Selected per simulated slot with `faults: {hostile: {mode: ..., after: N}}`. Each mode
is something a broken or malicious unit (or a counterfeit test firmware) can do on the
wire; the executive must turn each into ERROR for that slot alone, with a reason, while
the other slots of the panel PASS and the host's memory stays bounded:

- wrong_id: answers with a request id the host never used
- unsolicited: sends replies to requests never sent before the real one
- endless_line: a line that never ends instead of the reply (1 MiB per request)
- log_flood: thousands of log lines before each reply (still answers correctly)
- nan: RF readings of `nan`; impossible: a packet error rate of 130 %, or more test
  frames counted (rf.rx.stop) than any transmitter sends; inf: an `inf` RSSI and clock
  offset; loud: an RSSI of +35 dBm (no receiver reports that: it would be burnt)
- reboot: reboots by itself after `after` requests (boot banner and READY again)
- clone_mac: reports `mac` (another unit's) as its own

Imports ate.protocol and ate.config.common only; board.py applies it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ate.config.common import Strict
from ate.protocol.lines import encode_reply

HostileMode = Literal[
    "wrong_id",
    "unsolicited",
    "endless_line",
    "log_flood",
    "nan",
    "impossible",
    "inf",
    "loud",
    "reboot",
    "clone_mac",
]

ENDLESS_BYTES = 1 << 20
FLOOD_LINES = 500


class Hostile(Strict):
    mode: HostileMode
    after: int = Field(
        12,
        ge=0,
        le=100_000,
        description="requests since boot answered honestly first (bring-up and info pass)",
    )
    mac: str | None = Field(
        None, pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", description="clone_mac: the MAC to claim"
    )


def wire_bytes(hostile: Hostile, requests: int, request_id: int, line: bytes) -> bytes:
    """The bytes a hostile firmware sends instead of `line`, the honest reply."""
    if requests <= hostile.after or not line:
        return line
    if hostile.mode == "wrong_id":
        wrong = (request_id + 1000) % 0xFFFF + 1
        return encode_reply(wrong, {})
    if hostile.mode == "unsolicited":
        never = [(request_id + k) % 0xFFFF + 1 for k in (300, 301, 302)]
        return b"".join(encode_reply(n, {"level": 1}) for n in never) + line
    if hostile.mode == "endless_line":
        return b"A" * ENDLESS_BYTES
    if hostile.mode == "log_flood":
        flood = b"".join(
            b"I (%d) flood: the firmware talks and talks, line %d\n" % (n, n)
            for n in range(FLOOD_LINES)
        )
        return flood + line
    return line


def rf_fields(hostile: Hostile, requests: int, honest: dict[str, object]) -> dict[str, object]:
    # Every RF reading lies, whenever it is asked for: the order of steps may change
    # with the shared golden board's availability.
    if hostile.mode == "nan":
        return {**honest, "rssi": "nan"}
    if hostile.mode == "impossible":
        return {**honest, "per": "130.00"}
    return honest


def rx_fields(hostile: Hostile, honest: dict[str, object]) -> dict[str, object]:
    """rf.rx.stop as a lying receiver reports it (every time it is asked)."""
    if hostile.mode == "nan":
        return {**honest, "frames": 5, "rssi": "nan", "cfo": "0.00"}
    if hostile.mode == "inf":
        return {**honest, "frames": 5, "rssi": "-40.0", "cfo": "inf"}
    if hostile.mode == "impossible":
        return {**honest, "frames": 10_001, "rssi": "-40.0", "cfo": "0.00"}
    if hostile.mode == "loud":
        return {**honest, "frames": 5, "rssi": "35.0", "cfo": "0.00"}
    return honest


def reboots_now(hostile: Hostile, requests: int) -> bool:
    return hostile.mode == "reboot" and requests == hostile.after + 1
