"""Parameters and variants: one sequence file for a product family. `${name}` values are
replaced (keeping their type) before validation, per variant; the resolved sequence is
what `ate validate --variant X --show` prints and what the record's hash names; every
mistake is one line at its place in the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.errors import InputError
from ate.config.loader import load_sequence
from ate.station.runner import sequence_info
from tests.ate_cli import run_ate
from tests.scheduler.conftest import write_sequence


def family(tmp: Path, **changes: Any) -> Path:
    def mutate(doc: dict[str, Any]) -> None:
        doc["parameters"] = {"rail_low": 3.2, "imu": 0x68, "pairs": [[4, 5], [6, 7]]}
        doc["variants"] = {"pro": {"rail_low": 3.25}, "lite": {"imu": 0x69}}
        for s in doc["steps"]:
            if s["name"] == "rail_3v3":
                s["limits"]["low"] = "${rail_low}"
            if s["name"] == "imu_present":
                s["address"] = "${imu}"
            if s["name"] == "gpio_loopback":
                s["pairs"] = "${pairs}"
        doc.update(changes)

    return write_sequence(tmp, mutate)


def step(seq: Any, name: str) -> Any:
    return next(s for _, _, s in seq.model.all_steps() if s.name == name)


def test_variants_resolve_their_parameters(tmp_path: Path) -> None:
    path = family(tmp_path)
    base, pro, lite = (load_sequence(path, v) for v in (None, "pro", "lite"))
    assert step(base, "rail_3v3").limits.low == 3.2
    assert step(pro, "rail_3v3").limits.low == 3.25
    assert step(lite, "imu_present").address == 0x69 and step(base, "imu_present").address == 0x68
    assert step(base, "gpio_loopback").pairs == ((4, 5), (6, 7))
    hashes = {s.resolved_sha256 for s in (base, pro, lite)}
    assert len(hashes) == 3  # the record names what ran, per variant
    assert base.sha256 == pro.sha256  # one file
    info = sequence_info(pro)
    assert info["variant"] == "pro" and info["resolved_sha256"] == pro.resolved_sha256


@pytest.mark.parametrize(
    ("change", "variant", "words"),
    [
        ({}, "max", "variant 'max' is not in this sequence; its variants: lite, pro"),
        (
            {"variants": {"pro": {"rail_hi": 3.5}}},
            None,
            "variant 'pro' sets 'rail_hi', which is not",
        ),
        ({"description": "ok ${x}", "version": "${nope}"}, None, "${nope}: no such parameter"),
        ({"version": "v${rail_low}"}, None, "a parameter stands alone as a value"),
        ({"parameters": {"bad-name": 1}}, None, "parameter name 'bad-name'"),
    ],
    ids=["variant", "override", "unknown", "partial", "name"],
)
def test_mistakes_are_one_line_at_their_place(
    tmp_path: Path, change: dict[str, Any], variant: str | None, words: str
) -> None:
    path = family(tmp_path, **change)
    with pytest.raises(InputError) as err:
        load_sequence(path, variant)
    assert words in err.value.message
    assert err.value.line is not None and err.value.line > 1


def test_a_resolved_value_is_validated_like_a_written_one(tmp_path: Path) -> None:
    path = family(tmp_path, variants={"bad": {"rail_low": 9.0}})
    load_sequence(path)  # the base is fine
    with pytest.raises(InputError) as err:
        load_sequence(path, "bad")
    assert "low" in err.value.message and "high" in err.value.message  # 9 V above 3.4 V


def test_validate_shows_the_resolved_sequence(tmp_path: Path) -> None:
    path = family(tmp_path)
    done = run_ate("validate", path, "--variant", "pro", "--show")
    assert done.returncode == 0, done.stderr
    header, _, body = done.stdout.partition("\n")
    assert header.startswith(f"# {path}, variant pro, ")
    shown = yaml.safe_load(body.rsplit("\nOK ", 1)[0])
    rail = next(s for s in shown["steps"] if s["name"] == "rail_3v3")
    assert rail["limits"]["low"] == 3.25 and "parameters" not in shown
