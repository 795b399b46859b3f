"""run_validate and run_schema, called directly: output lines and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ate.cli.validate_cmd import run_schema, run_validate

ROOT = Path(__file__).resolve().parents[2]
S3 = str(ROOT / "sequences" / "s3-devkit-functional.yaml")
Write = Callable[..., tuple[Path, int | None, int | None]]

FIXTURE = """\
fixture: bench
controller: {driver: sim}
simulation: {board: board.yaml}
slots:
  - {slot: 1, port: sim, power: 0, current_sense: 0}
  - {slot: 2, port: sim, power: 1, current_sense: 1}
resources:
  dmm: {kind: dmm}
  golden: {kind: golden_board}
"""


def test_ok_sequence(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate([S3]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK {S3} (sequence s3-devkit-functional 1.0.0, 15 steps)\n"
    assert err == ""


def test_ok_fixture_and_pair(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    fix, _, _ = write(FIXTURE, "fixture.yaml")
    assert run_validate([S3, str(fix)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"OK {S3} (sequence s3-devkit-functional 1.0.0, 15 steps)",
        f"OK {fix} (fixture bench, 2 slots)",
        f"OK {S3} runs on {fix}",
    ]
    assert err == ""


def test_pair_that_does_not_fit(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    fix, _, _ = write(FIXTURE.replace("  golden: {kind: golden_board}\n", ""), "fixture.yaml")
    assert run_validate([str(fix), S3]) == 2
    out, err = capsys.readouterr()
    assert out.count("OK ") == 2
    line = next(i for i, t in enumerate(Path(S3).read_text().splitlines(), 1) if "[golden]" in t)
    assert err.startswith(f"{S3}:{line}:")
    assert "uses 'golden', which fixture 'bench'" in err and err.count("\n") == 1


def test_bad_file_among_good(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    bad, _, _ = write("sequence: t\nversion: 1.0.0\nchip: esp32s9\n")
    assert run_validate([S3, str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"OK {S3}")
    assert (
        err == f"{bad}:3:7: chip: 'esp32s9' is not allowed; allowed: esp32, esp32s2, "
        "esp32s3, esp32c3, esp32c6, esp32h2 (and 2 more problems)\n"
    )


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_validate([str(tmp_path / "x.yaml")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'x.yaml'}: no such file\n"


def test_neither_sequence_nor_fixture(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = write("# a simulated board\nboard: x\nleds: 3\n", "board.yaml")
    assert run_validate([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:2:1: not a sequence, fixture, profile or station file")
    assert "allowed: 'sequence: NAME' (a test sequence), 'fixture: NAME'" in err
    assert "'station: NAME' (a station file)" in err
    assert "'profile: NAME' (a provisioning profile)" in err


def test_both_sequence_and_fixture(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = write("sequence: a\nfixture: b\n")
    assert run_validate([str(path)]) == 2
    assert "has both 'sequence' and 'fixture'" in capsys.readouterr().err


def test_yaml_error_is_reported_once(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = write("sequence: [a\n")
    assert run_validate([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:2:1: not valid YAML") and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["sequence", "fixture", "profile"])
def test_schema_is_json_with_dialect_and_title(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_schema(kind) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    title = {"sequence": "ate test sequence", "profile": "ate provisioning profile"}
    assert schema["title"] == title.get(kind, f"ate {kind}")
    assert schema["additionalProperties"] is False


def test_sequence_schema_names_every_step_type(capsys: pytest.CaptureFixture[str]) -> None:
    run_schema("sequence")
    text = capsys.readouterr().out
    for step_type in ("gpio_loopback", "gpio_read", "i2c_probe", "i2c_read", "spi_jedec",
                      "spi_transfer", "adc", "rail_voltage", "supply_current", "rf_golden",
                      "plugin"):  # fmt: skip
        assert f'"{step_type}"' in text


def test_schema_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """What an editor would say: the examples (with '2s' durations) are valid."""
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    run_schema("sequence")
    schema = json.loads(capsys.readouterr().out)
    for path in sorted((ROOT / "sequences").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**yaml.safe_load(Path(S3).read_text()), "chip": "z80"}, schema)


def test_unknown_schema_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_schema("board") == 2
    assert "allowed: sequence, fixture" in capsys.readouterr().err
