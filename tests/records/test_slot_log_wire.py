"""The test-protocol exchange in a slot log (`dut_tx` / `dut_rx`): kept as text, each line
cut at WIRE_LINE_MAX with its length said, provisioning payloads left out, PEM private
keys redacted; what a replay makes of a line the log keeps only in part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ate.model.events import DutWire, SlotEnded
from ate.model.results import SlotResult
from ate.model.verdict import Verdict
from ate.protocol.lines import ErrorReply, Request, parse_device_line
from ate.records.slot_log import WIRE_LINE_MAX, SlotLogWriter
from ate.sim.board import BoardSpec
from ate.sim.replay import ReplayBoard, load_slot_log

REPO = Path(__file__).resolve().parents[2]
PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB7s\n-----END EC PRIVATE KEY-----"
MAC = "24:0a:c4:12:34:56"


def write_log(tmp: Path, wires: list[DutWire]) -> list[dict[str, Any]]:
    logs = SlotLogWriter(tmp)
    logs(DutWire("p1", 1, "rx", f"@* READY proto=1 fw=ate-testfw/1.0.0 chip=esp32s3 mac={MAC}"))
    for wire in wires:
        logs(wire)
    logs(SlotEnded("p1", SlotResult(slot=1, verdict=Verdict.PASS)))
    text = (tmp / "logs" / "p1-slot1.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def wire_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] in ("dut_tx", "dut_rx")]


def answer(tmp: Path, request: Request) -> ErrorReply | object:
    """What a ReplayBoard built from the log in `tmp` answers to `request`."""
    spec = BoardSpec.model_validate_json(
        json.dumps(
            {
                "board": "b",
                "chip": "esp32s3",
                "current_ma": {
                    m: {"nominal": 1.0} for m in ("idle", "active", "light_sleep", "deep_sleep")
                },
            }
        )
    )
    board = ReplayBoard(spec, load_slot_log(tmp / "logs" / "p1-slot1.jsonl"))
    board.power_on()
    assert board.finish_boot()
    assert board.ready_notice().startswith(b"@* READY")
    out = board.handle(request)
    return parse_device_line(out.decode().rstrip("\n"))


def test_provisioning_payloads_are_left_out(tmp_path: Path) -> None:
    csr = "30" * 300
    records = write_log(
        tmp_path,
        [
            DutWire("p1", 1, "tx", "!7 prov.csr subject=434e3d78", "prov.csr"),
            DutWire("p1", 1, "rx", f"@7 OK csr={csr}", "prov.csr"),
            DutWire("p1", 1, "tx", "!8 prov.sign 00112233445566778899aabbccddeeff", "prov.sign"),
            DutWire("p1", 1, "rx", "@8 ERR EARG no device key: send prov.key first", "prov.sign"),
            DutWire("p1", 1, "tx", "!9 gpio.get 5", "gpio.get"),
            DutWire("p1", 1, "rx", "@9 OK level=1", "gpio.get"),
        ],
    )
    tx_csr, rx_csr, tx_sign, rx_sign, tx_gpio, rx_gpio = wire_records(records)[1:]
    assert tx_csr["line"] == "!7 prov.csr [payload left out]" and tx_csr["left_out"]
    assert rx_csr["line"] == "@7 OK [payload left out]" and rx_csr["left_out"]
    assert csr not in json.dumps(records) and "434e3d78" not in json.dumps(records)
    assert tx_sign["line"] == "!8 prov.sign [payload left out]"
    # an error says nothing secret and is kept whole
    assert rx_sign["line"] == "@8 ERR EARG no device key: send prov.key first"
    assert "left_out" not in rx_sign
    assert (tx_gpio["line"], rx_gpio["line"]) == ("!9 gpio.get 5", "@9 OK level=1")
    # a replay cannot answer what the log left out: it says so, never a made-up payload
    got = answer(tmp_path, Request(3, "prov.csr", (), {"subject": "434e3d79"}))
    assert isinstance(got, ErrorReply) and got.id == 3 and got.code == "EREPLAY"
    assert "left out the payload of this prov.csr exchange" in got.message


def test_a_long_line_is_cut_and_says_so(tmp_path: Path) -> None:
    long = "@4 OK data=" + "ab" * 1500
    records = write_log(
        tmp_path,
        [
            DutWire("p1", 1, "tx", "!4 spi.xfer 1 9f", "spi.xfer"),
            DutWire("p1", 1, "rx", long, "spi.xfer"),
            DutWire("p1", 1, "rx", "@4 O" + "K" * 5000, corrupt="checksum mismatch"),
        ],
    )
    _, _, rx, corrupt = wire_records(records)
    assert len(rx["line"]) == WIRE_LINE_MAX and rx["cut"] == len(long)
    assert long.startswith(rx["line"])
    assert len(corrupt["line"]) == WIRE_LINE_MAX and corrupt["corrupt"] == "checksum mismatch"
    got = answer(tmp_path, Request(1, "spi.xfer", ("1", "9f")))
    assert isinstance(got, ErrorReply) and got.code == "EREPLAY"
    assert f"cut this line at {WIRE_LINE_MAX} of {len(long)} characters" in got.message


def test_a_private_key_on_the_wire_is_redacted(tmp_path: Path) -> None:
    records = write_log(tmp_path, [DutWire("p1", 1, "rx", f"@2 OK note={PEM}", "sys.note")])
    text = json.dumps(records)
    assert "MHcCAQEEIB7s" not in text and "[redacted private key]" in text


def test_a_resend_is_marked(tmp_path: Path) -> None:
    records = write_log(
        tmp_path,
        [
            DutWire("p1", 1, "tx", "!5 ping", "ping"),
            DutWire("p1", 1, "tx", "!5 ping", "ping", resend=True),
            DutWire("p1", 1, "rx", "@5 OK", "ping"),
        ],
    )
    first, again, reply = wire_records(records)[1:]
    assert "resend" not in first and again["resend"] is True and reply["command"] == "ping"
    # one exchange: answered once, under the new host's id
    got = answer(tmp_path, Request(11, "ping"))
    assert not isinstance(got, ErrorReply) and got.id == 11  # type: ignore[attr-defined]
