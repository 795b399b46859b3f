# ruff: noqa: ASYNC240 - configfs and sysfs are kernel memory, not disk: no blocking I/O to hide
"""The gpiod driver's logic against its in-process twin (SimGpioChip: named lines, edge
events on a pipe the loop watches, a history of outputs): safe state at open, the strap
order for the ROM loader and for a run, EN and IO0 open drain, clamp edges as CLAMP
notices and the abort event, a bounce or glitch shorter than the debounce time as
nothing, a button press as BUTTON, power off at close. Against the kernel's gpio-sim the
same driver runs through libgpiod, where the kernel has it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml

from ate.config.loader import load_fixture
from ate.drivers.controllers.gpio_sim import SimGpioChip
from ate.protocol.lines import Notice
from ate.station.runner import open_controller

NAMES = ["CLAMP", "START", "P1", "EN1", "IO01", "LED1", "P2", "EN2", "IO02"]


def write_fixture(tmp: Path, chip: str, debounce_s: float = 0.02) -> Path:
    doc = {
        "fixture": "pi1",
        "controller": {
            "driver": "gpiod",
            "options": {
                "chip": chip,
                "clamp": "CLAMP",
                "button": "START",
                "slots": {
                    1: {"power": "P1", "en": "EN1", "io0": "IO01", "led": "LED1"},
                    2: {"power": 6, "en": 7, "io0": 8},
                },
                "reset_s": 0.02,
                "strap_s": 0.01,
                "debounce_s": debounce_s,
            },
        },
        "slots": [
            {"slot": n, "port": f"rfc2217://127.0.0.1:{4000 + n}", "power": n, "current_sense": n}
            for n in (1, 2)
        ],
    }
    path = tmp / "pi1.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def test_the_driver_straps_reads_the_clamp_and_powers_off(tmp_path: Path) -> None:
    chip = SimGpioChip.create("pi1", NAMES)
    try:
        chip.drive_input("CLAMP", True)  # active low: open
        ctrl = await open_controller(load_fixture(write_fixture(tmp_path, "sim:pi1")), None)
        # Safe state: unpowered, EN and IO0 released, LED off.
        assert [chip.level(n) for n in ("P1", "EN1", "IO01", "LED1", "P2")] == [
            False,
            True,
            True,
            False,
            False,
        ]
        assert chip.open_drain == {"EN1", "IO01", "EN2", "IO02"}
        notices: list[Notice] = []
        seen = asyncio.Event()

        def on_notice(n: Notice) -> None:
            notices.append(n)
            seen.set()

        ctrl.listen(on_notice, lambda exc: None)
        assert not await ctrl.clamp_closed()
        chip.drive_input("CLAMP", False)
        await asyncio.wait_for(seen.wait(), 5)
        assert notices[-1] == Notice("CLAMP", {"closed": "1"})
        assert await ctrl.clamp_closed() and not ctrl.clamp_event().is_set()

        await ctrl.power(1, True)
        chip.history.clear()
        await ctrl.strap(1, "boot")
        order = [(line, value) for _, line, value in chip.history]
        # IO0 low before EN falls, EN released while IO0 is still low, then IO0 released.
        assert order == [("IO01", False), ("EN1", False), ("EN1", True), ("IO01", True)]
        chip.history.clear()
        await ctrl.strap(1, "run")
        assert [(line, v) for _, line, v in chip.history] == [
            ("IO01", True),
            ("EN1", False),
            ("EN1", True),
            ("IO01", True),
        ]
        await ctrl.led(1, "pass")
        assert chip.level("LED1")

        seen.clear()
        chip.drive_input("CLAMP", True)  # opened mid-panel: the abort event
        await asyncio.wait_for(seen.wait(), 5)
        assert ctrl.clamp_event().is_set() and notices[-1].fields == {"closed": "0"}
        seen.clear()
        chip.drive_input("START", False)  # pressed
        await asyncio.wait_for(seen.wait(), 5)
        assert notices[-1] == Notice("BUTTON", {"pressed": "1"})

        await ctrl.close()
        assert not chip.level("P1") and chip.released
    finally:
        chip.remove()


async def test_bounces_and_glitches_shorter_than_the_debounce_time_tell_nothing(
    tmp_path: Path,
) -> None:
    chip = SimGpioChip.create("pi2", NAMES)
    try:
        chip.drive_input("CLAMP", True)  # active low: open
        fixture = load_fixture(write_fixture(tmp_path, "sim:pi2", debounce_s=0.05))
        ctrl = await open_controller(fixture, None)
        notices: list[Notice] = []
        seen = asyncio.Event()

        def on_notice(n: Notice) -> None:
            notices.append(n)
            seen.set()

        ctrl.listen(on_notice, lambda exc: None)
        # A glitch: closed and open again well within 50 ms. Then a bouncing close.
        chip.drive_input("CLAMP", False)
        await asyncio.sleep(0)  # the loop may read the first edge on its own
        chip.drive_input("CLAMP", True)
        for level in (False, True, False, True, False):
            chip.drive_input("CLAMP", level)
        await asyncio.wait_for(seen.wait(), 5)
        assert notices == [Notice("CLAMP", {"closed": "1"})]
        # A glitch open mid-panel (a vibration) is no abort; a real open is one.
        seen.clear()
        chip.drive_input("CLAMP", True)
        chip.drive_input("CLAMP", False)
        chip.drive_input("START", False)  # a real press, told after the glitch settles
        await asyncio.wait_for(seen.wait(), 5)
        assert notices[1:] == [Notice("BUTTON", {"pressed": "1"})]
        assert not ctrl.clamp_event().is_set()
        seen.clear()
        chip.drive_input("CLAMP", True)
        await asyncio.wait_for(seen.wait(), 5)
        assert notices[2:] == [Notice("CLAMP", {"closed": "0"})]
        assert ctrl.clamp_event().is_set()
        await ctrl.close()
    finally:
        chip.remove()


@pytest.mark.kernel_feature
async def test_the_driver_on_the_kernels_gpio_sim(tmp_path: Path) -> None:
    configfs = Path("/sys/kernel/config/gpio-sim")
    if not configfs.is_dir() or not os.access(configfs, os.W_OK):
        pytest.skip(
            "the kernel's gpio-sim is not available here (needs CONFIG_GPIO_SIM, configfs "
            "mounted at /sys/kernel/config and root); the driver's logic is tested against "
            "its twin above"
        )
    dev = configfs / f"ate-{os.getpid()}"
    bank = dev / "gpio-bank0"
    bank.mkdir(parents=True)
    try:
        (bank / "num_lines").write_text(str(len(NAMES)))
        for n, name in enumerate(NAMES):
            (bank / f"line{n}").mkdir()
            (bank / f"line{n}" / "name").write_text(name)
        (dev / "live").write_text("1")
        chip = (bank / "chip_name").read_text().strip()
        sysfs = Path("/sys/devices/platform") / (dev / "dev_name").read_text().strip() / chip

        def pull(line: str, up: bool) -> None:
            attr = sysfs / f"sim_gpio{NAMES.index(line)}" / "pull"
            attr.write_text("pull-up" if up else "pull-down")

        pull("CLAMP", True)
        ctrl = await open_controller(load_fixture(write_fixture(tmp_path, f"/dev/{chip}")), None)
        seen = asyncio.Event()
        ctrl.listen(lambda n: seen.set(), lambda exc: None)
        assert not await ctrl.clamp_closed()
        pull("CLAMP", False)
        await asyncio.wait_for(seen.wait(), 5)
        assert await ctrl.clamp_closed()
        await ctrl.power(1, True)
        await ctrl.strap(1, "boot")
        value = (sysfs / f"sim_gpio{NAMES.index('P1')}" / "value").read_text().strip()
        assert value == "1"
        await ctrl.close()
    finally:
        (dev / "live").write_text("0")
        for n in range(len(NAMES)):
            (bank / f"line{n}").rmdir()
        bank.rmdir()
        dev.rmdir()
