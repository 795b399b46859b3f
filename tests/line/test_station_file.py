"""The line settings of a station file through `ate validate`: the sample on a line
validates; a bad broker URL or a cfx MES without one is one line naming file:line:col,
exit 2, with no password echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ate.cli.validate_cmd import run_validate
from ate.config.loader import load_station

ROOT = Path(__file__).resolve().parents[2]
HEAD = f"""\
station: s
fixtures:
  - {{file: {ROOT / "fixtures" / "sim-quad.yaml"}}}
sequence: {ROOT / "sequences" / "s3-devkit-functional.yaml"}
"""


def test_the_line_sample_validates(capsys: pytest.CaptureFixture[str]) -> None:
    sample = ROOT / "fixtures" / "sim-station-line.yaml"
    assert run_validate([str(sample)]) == 0
    st = load_station(sample).model
    assert st.mes.driver == "cfx" and st.mqtt is not None and st.metrics is not None
    # the offline sample stays offline: no broker in it
    plain = load_station(ROOT / "fixtures" / "sim-station.yaml").model
    assert plain.mes.driver == "linedb" and plain.mqtt is None and plain.metrics is None


@pytest.mark.parametrize(
    ("line", "col", "says"),
    [
        (
            'mqtt: {url: "http://broker:1883"}',
            13,
            "mqtt.url: url 'http://broker:1883': write mqtt://",
        ),
        ('mqtt: {url: "mqtt://broker:70000"}', 13, "write mqtt://[USER:PASSWORD@]HOST[:PORT]"),
        ("mqtt: {url: mqtt://b, prefix: a/#}", 31, "mqtt.prefix"),
        ('mes: {driver: cfx, url: "amqp://u:secret@host:99999"}', 25, "amqp://***@host:99999"),
        ("mes: {driver: cfx}", 6, "mes driver cfx needs url: amqp://"),
        ("mes: {driver: ldap}", 15, "mes.driver"),
        ('mes: {url: "amqp://h"}', 12, "url is for the cfx driver"),
        ("metrics: {port: 70000}", 17, "metrics.port"),
    ],
)
def test_bad_line_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, col: int, says: str
) -> None:
    path = tmp_path / "station.yaml"
    path.write_text(HEAD + line + "\n")
    assert run_validate([str(path)]) == 2
    _, err = capsys.readouterr()
    assert err.startswith(f"{path}:5:{col}: "), err
    assert says in err and err.count("\n") == 1
    assert "secret" not in err and "Traceback" not in err
