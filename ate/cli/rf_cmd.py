"""`ate rf golden-check`: measure each slot's path loss to the golden board with a
known-good reference unit per slot and write the calibration RF steps need."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ate.config.errors import InputError
from ate.config.loader import LoadedFixture, load_fixture, load_model, load_sequence
from ate.model.radio import RfMode, channels
from ate.rf import calibration
from ate.rf.calibration import describe_drift
from ate.scheduler.panel import PanelRefused
from ate.station.golden_check import CheckSpec, default_channels, run_check
from ate.station.runner import simulated_twin

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANNOT_RUN = 0, 1, 2, 3


def add_parser(sub: Any) -> None:
    rf = sub.add_parser("rf", help="RF through the golden board")
    rf_sub = rf.add_subparsers(dest="rf_command", required=True, metavar="COMMAND")
    gc = rf_sub.add_parser(
        "golden-check",
        help="measure each slot's path loss with a reference unit; write the calibration",
    )
    gc.add_argument("--fixture", "-f", required=True, help="fixture YAML")
    gc.add_argument(
        "--sequence", "-s", required=True, help="sequence YAML: its test firmware and chip"
    )
    gc.add_argument("--out", "-o", type=Path, help="default: the golden board's calibration:")
    gc.add_argument("--golden", help="the golden_board resource (default: the only one)")
    gc.add_argument(
        "--reference-dbm",
        type=float,
        help="the reference unit's tx power at power=20 (default, simulated: its board file)",
    )
    gc.add_argument(
        "--channels", help="e.g. wifi1,wifi6,ble37 (default: every Wi-Fi channel and 37..39)"
    )
    gc.add_argument("--valid-days", type=int, default=calibration.DEFAULT_VALID_DAYS)


def _channels(text: str | None, chip: str) -> tuple[tuple[RfMode, int], ...]:
    if text is None:
        return default_channels(chip)
    out: list[tuple[RfMode, int]] = []
    for item in text.split(","):
        mode: RfMode = "ble" if item.startswith("ble") else "wifi"
        number = item.removeprefix(mode)
        if not item.startswith(("wifi", "ble")) or not number.isdigit():
            raise InputError(None, f"--channels {item!r}: write wifi<N> or ble<N>")
        if int(number) not in channels(chip, mode):
            raise InputError(
                None, f"--channels {item!r}: the {chip} has no {mode} channel {number}"
            )
        out.append((mode, int(number)))
    return tuple(out)


def _reference_dbm(given: float | None, fixture: LoadedFixture) -> float:
    if given is not None:
        return given
    sim = fixture.model.simulation
    if sim is None:
        raise InputError(
            fixture.path, "give --reference-dbm: the reference unit's tx power at power=20"
        )
    from ate.sim.board import BoardSpec  # only a simulated fixture has a board file

    board = load_model(fixture.base_dir / sim.board, BoardSpec)
    return board.rf.tx_power_dbm.nominal


def run_golden_check(args: argparse.Namespace) -> int:
    try:
        fixture = load_fixture(Path(args.fixture))
        sequence = load_sequence(Path(args.sequence))
        golden = args.golden or fixture.model.default_golden()
        boards = fixture.model.golden_boards()
        if golden not in boards:
            raise InputError(
                fixture.path,
                f"golden board {golden or '(none given)'}: the fixture's golden boards are "
                f"{', '.join(boards) or 'none'}; name one with --golden",
            )
        res = fixture.model.resources[golden]
        out = args.out or (fixture.base_dir / res.calibration if res.calibration else None)
        if out is None:
            raise InputError(
                fixture.path, f"golden board {golden} has no calibration: file; give --out FILE"
            )
        check = CheckSpec(
            golden,
            _reference_dbm(args.reference_dbm, fixture),
            _channels(args.channels, sequence.model.chip),
        )
        previous = calibration.load(out) if out.exists() else None
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with simulated_twin(fixture) as sim:
        try:
            result = asyncio.run(run_check(fixture, sequence, check, sim, previous=previous))
        except PanelRefused as exc:
            print(f"ate: golden-check: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
    for slot, reason in sorted(result.failed_slots.items()):
        print(f"slot {slot}: {reason or 'no measurement'}", file=sys.stderr)
    if result.calibration is None:
        print("ate: golden-check: no calibration written", file=sys.stderr)
        return EXIT_FAILED
    calibration.save(result.calibration, out)
    for slot, losses in sorted(result.path_loss_db.items()):
        shown = ", ".join(f"{k} {v:.1f}" for k, v in losses.items())
        print(f"slot {slot}: path loss dB: {shown}")
    print(f"calibration written to {out} (golden board {result.calibration.golden_mac})")
    if result.drift:
        print(
            "ate: golden-check: drifted from the previous calibration: "
            + describe_drift(result.drift, result.calibration.tolerance_db)
            + "; panels refuse it until a second golden-check agrees (fix the cable or "
            "antenna first)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
