"""The simulated RF space: one shield box's air, shared by the golden twin and every
slot's unit, in the twins' process and on their event loop.

A transmission (rf.tx) puts `count` test frames on one channel, each occupying the air
for its airtime (ate.sim.timing.LineTimes.test_frame_s), one every interval, in real
(monotonic) time from the moment the firmware starts sending. A receiver (rf.rx.start
.. rf.rx.stop) counts the frames that started while it listened, on its mode and
channel, from its `from=` sender, whose power at its antenna (tx power - path loss)
clears its sensitivity (with per-frame noise) and that no other transmission on that
channel overlapped in time: a collision corrupts the overlapping frames of both.

Pure bookkeeping, no I/O: the boards (ate.sim.board) call it; the fixture twin makes one
per fixture. Imports ate.config.fixture and ate.sim.timing only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from ate.config.fixture import SimRfSpec
from ate.sim.timing import LINE

Mode = Literal["wifi", "ble"]

# Kept this long after they end: a receiver's window never reaches further back.
_KEEP_S = 120.0
# The firmware cannot start a frame before the previous one is out: at least this much
# air between frames (DIFS, the gap 802.11 requires before a new transmission).
_GAP_S = 50e-6
_RSSI_NOISE_DB = 0.5  # per-frame RSSI spread of an ESP32 receiver
_FADE_DB = 1.0  # per-frame spread of the received power against the sensitivity
_STAMP_JITTER_S = 50e-9  # a receive timestamp's jitter (esp_timer read in the rx callback)


@dataclass
class Radio:
    """One unit's radio as the air sees it (its draws and faults, set by its board)."""

    mac: str
    slot: int | None  # None: the golden board
    tx_offset_db: float  # actual tx power = requested + this (PA spread, weak PA, antenna)
    rx_offset_db: float  # gain of its receive path (0, or an open antenna's loss)
    sensitivity_dbm: float
    ppm: float  # its 40 MHz crystal's offset: its carrier and its timer run off it
    frame_loss: float = 0.0  # chance a good frame is still lost (0..1)


@dataclass(frozen=True)
class Transmission:
    sender: Radio
    mode: Mode
    channel: int
    t0: float
    interval_s: float
    count: int
    power_dbm: float
    airtime_s: float

    @property
    def end(self) -> float:
        return self.t0 + (self.count - 1) * self.interval_s + self.airtime_s

    def frame(self, k: int) -> tuple[float, float]:
        start = self.t0 + k * self.interval_s
        return start, start + self.airtime_s

    def overlaps(self, start: float, end: float) -> bool:
        """Does any of this transmission's frames share air time with [start, end)?"""
        if end <= self.t0 or start >= self.end:
            return False
        k = max(0, math.floor((start - self.t0) / self.interval_s))
        for j in (k - 1, k, k + 1):
            if 0 <= j < self.count:
                s, e = self.frame(j)
                if s < end and start < e:
                    return True
        return False


@dataclass(frozen=True)
class Heard:
    frames: int
    rssi: float | None
    cfo: float | None


def frame_interval_s(mode: Mode, interval_us: int) -> float:
    """The time between frame starts: the interval asked for, unless a frame's airtime
    (and the gap after it) is longer."""
    return max(interval_us * 1e-6, LINE.test_frame_s(mode) + _GAP_S)


@dataclass
class RfSpace:
    """One shield box. `seed` makes the per-frame noise repeatable for one timeline."""

    spec: SimRfSpec
    seed: int | str = 0
    _on_air: list[Transmission] = field(default_factory=list)
    _noise: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._noise = random.Random(f"{self.seed}:rf-space")

    def loss_db(self, a: Radio, b: Radio, channel: int) -> float:
        """Path loss between two radios in the box: slot to golden board as calibrated
        by the fixture; slot to slot a little more than the worse of the two."""
        if a.slot is None and b.slot is None:
            return self.spec.loss_db(0, channel)
        if a.slot is None or b.slot is None:
            slot = a.slot if a.slot is not None else b.slot
            assert slot is not None
            return self.spec.loss_db(slot, channel)
        return max(self.spec.loss_db(a.slot, channel), self.spec.loss_db(b.slot, channel)) + 6.0

    def transmit(
        self,
        sender: Radio,
        mode: Mode,
        channel: int,
        count: int,
        interval_us: int,
        power_dbm: float,
        now: float,
    ) -> Transmission:
        """Frames go out from `now`; returns the transmission (its end is when rf.tx replies)."""
        tx = Transmission(
            sender,
            mode,
            channel,
            now,
            frame_interval_s(mode, interval_us),
            count,
            power_dbm + sender.tx_offset_db,
            LINE.test_frame_s(mode),
        )
        self._on_air = [t for t in self._on_air if t.end > now - _KEEP_S]
        self._on_air.append(tx)
        return tx

    def cut(self, sender: Radio, now: float) -> None:
        """The sender lost power or was reset: its frames after `now` never left."""
        kept = []
        for t in self._on_air:
            if t.sender is sender and t.end > now:
                sent = max(0, math.floor((now - t.t0) / t.interval_s) + 1) if now > t.t0 else 0
                if sent == 0:
                    continue
                t = Transmission(
                    t.sender,
                    t.mode,
                    t.channel,
                    t.t0,
                    t.interval_s,
                    min(sent, t.count),
                    t.power_dbm,
                    t.airtime_s,
                )
            kept.append(t)
        self._on_air = kept

    def hear(
        self,
        receiver: Radio,
        mode: Mode,
        channel: int,
        sender_mac: str | None,
        start: float,
        stop: float,
    ) -> Heard:
        """What `receiver` counted listening from `start` to `stop` (rf.rx.stop)."""
        mine = [
            t
            for t in self._on_air
            if t.mode == mode
            and t.channel == channel
            and t.sender is not receiver
            and (sender_mac is None or t.sender.mac == sender_mac)
            and t.t0 < stop
            and t.end > start
        ]
        others = [t for t in self._on_air if t.mode == mode and t.channel == channel]
        # Distinct sequence numbers: a second transmission from the same sender counts its
        # 0..count-1 again only where the first did not reach.
        seqs: set[int] = set()
        rssi: list[float] = []
        pairs: list[tuple[float, float]] = []  # (receiver time, sender time) per frame
        for tx in mine:
            loss = self.loss_db(tx.sender, receiver, channel)
            level = tx.power_dbm - loss + receiver.rx_offset_db
            first = max(0, math.ceil((start - tx.t0) / tx.interval_s))
            for k in range(first, tx.count):
                s, e = tx.frame(k)
                if s >= stop or e > stop:
                    break
                if any(o is not tx and o.overlaps(s, e) for o in others):
                    continue  # a collision: this frame is corrupt at every receiver
                if level + self._noise.gauss(0.0, _FADE_DB) < receiver.sensitivity_dbm:
                    continue
                if self._noise.random() < receiver.frame_loss:
                    continue
                if k in seqs:
                    continue
                seqs.add(k)
                rssi.append(level + self._noise.gauss(0.0, _RSSI_NOISE_DB))
                # Each side stamps the frame with its own clock (its crystal's offset).
                heard_at = (e - start) * (1.0 + receiver.ppm * 1e-6)
                heard_at += self._noise.gauss(0.0, _STAMP_JITTER_S)
                pairs.append((heard_at, (s - tx.t0) * (1.0 + tx.sender.ppm * 1e-6)))
        frames = len(seqs)
        if frames == 0:
            return Heard(0, None, None)
        mean = sum(rssi) / frames
        cfo = _fit_ppm(pairs) if frames >= 3 else None
        return Heard(frames, mean, cfo)


def _fit_ppm(pairs: list[tuple[float, float]]) -> float:
    """The sender's clock against the receiver's, ppm: the slope of a least-squares fit
    of sender timestamps against receive timestamps (each on its own crystal), as the
    firmware does it, minus one."""
    xs = [x for x, _ in pairs]
    ys = [y for _, y in pairs]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0.0:
        return 0.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return (slope - 1.0) * 1e6
