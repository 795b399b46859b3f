"""Shared step blocks: `{include: FILE}` puts a block's steps in place (with the
sequence's parameters), the record and the approval digest cover the block, and every
mistake is one line where it is: inside the block at the block's line, a clash with the
sequence at the include line, and the sequence's own steps keep their lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.errors import InputError
from ate.config.loader import load_sequence
from ate.station.approvals import sequence_content
from tests.scheduler.conftest import write_sequence

BLOCK = [
    {"name": "imu_present", "type": "i2c_probe", "address": "${imu}"},
    {"name": "boot_pin", "type": "gpio_read", "pin": 0, "expect": 1, "pull": "up"},
]


def family(tmp: Path, block: Any = BLOCK, **steps_at: Any) -> tuple[Path, Path]:
    (tmp / "blocks").mkdir(exist_ok=True)
    block_path = tmp / "blocks" / "common.yaml"
    block_path.write_text(
        yaml.safe_dump({"description": "shared", "steps": block}, sort_keys=False)
    )

    def mutate(doc: dict[str, Any]) -> None:
        doc["test_firmware"]["flash"] = "never"
        doc["parameters"] = {"imu": 0x68}
        keep = [s for s in doc["steps"] if s["name"] in ("rail_3v3", "vref_divider")]
        doc["steps"] = [keep[0], {"include": "blocks/common.yaml"}, keep[1]]
        doc.update(steps_at)

    return write_sequence(tmp, mutate), block_path


def test_a_block_is_put_in_place_and_counted(tmp_path: Path) -> None:
    path, block = family(tmp_path)
    seq = load_sequence(path)
    names = [s.name for s in seq.model.steps]
    assert names[1:3] == ["imu_present", "boot_pin"] and len(names) == 4
    assert seq.model.steps[1].address == 0x68  # the sequence's parameter
    assert [n for n, _ in seq.includes] == ["blocks/common.yaml"]
    before = sequence_content(path).digest
    doc = yaml.safe_load(block.read_text())
    doc["steps"][1]["pull"] = "none"
    block.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert sequence_content(path).digest != before  # the approval covers the block


def where(err: pytest.ExceptionInfo[InputError]) -> tuple[Path, int]:
    assert err.value.path is not None and err.value.line is not None
    return Path(err.value.path), err.value.line


def test_a_mistake_inside_a_block_is_at_its_line(tmp_path: Path) -> None:
    bad = [BLOCK[0], {**BLOCK[1], "pinn": 0}]
    path, block = family(tmp_path, bad)
    with pytest.raises(InputError) as err:
        load_sequence(path)
    file, line = where(err)
    assert file == block and line > 1 and "pinn" in err.value.message


def test_a_clash_with_the_sequence_is_at_the_include_line(tmp_path: Path) -> None:
    # vref_divider comes first in the sequence, so the block's copy is the second one
    path, _ = family(tmp_path, [BLOCK[0], {**BLOCK[1], "name": "vref_divider"}])
    with pytest.raises(InputError) as err:
        load_sequence(path)
    file, line = where(err)
    text = path.read_text().splitlines()
    assert file == path and "include" in text[line - 1], (line, err.value.message)
    assert "used twice" in err.value.message


def test_the_sequences_own_steps_keep_their_lines(tmp_path: Path) -> None:
    path, _ = family(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["steps"][2]["channel"] = 99  # the step after the include: out of range
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(InputError) as err:
        load_sequence(path)
    file, line = where(err)
    assert file == path and "channel" in path.read_text().splitlines()[line - 1]


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"include": "blocks/none.yaml"}, "include 'blocks/none.yaml'"),
        ({"include": "blocks/common.yaml", "name": "x"}, "an include item is only"),
    ],
)
def test_bad_include_items(tmp_path: Path, item: dict[str, Any], words: str) -> None:
    path, _ = family(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["steps"][1] = item
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(InputError, match=words):
        load_sequence(path)


def test_a_block_does_not_include_blocks(tmp_path: Path) -> None:
    path, block = family(tmp_path, [BLOCK[0], {"include": "other.yaml"}])
    with pytest.raises(InputError, match="does not include other blocks") as err:
        load_sequence(path)
    assert where(err)[0] == block
