"""The ROM server: reset policy, persistence, wire time, RFC 2217 lines, the foreground CLI."""

from __future__ import annotations

import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import esptool
import pytest
import serial
from rom_helpers import ok, run_tool

from ate.protocol.slip import (
    SYNC_PAYLOAD,
    Op,
    Response,
    SlipDecoder,
    encode_command,
    encode_data_command,
    parse_response,
)
from ate.sim.rom.server import RomServerThread, run_sim_rom


class Wire:
    """A raw TCP client speaking the ROM protocol, counting bytes both ways."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("socket://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.decoder = SlipDecoder()
        self.sent = self.received = 0
        self.raw = b""  # everything received, frames and text alike
        self.pending: list[bytes] = []

    def close(self) -> None:
        self.sock.close()

    def frames(self, count: int) -> list[bytes]:
        while len(self.pending) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.received += len(chunk)
            self.raw += chunk
            self.pending += self.decoder.feed(chunk)
        out, self.pending = self.pending[:count], self.pending[count:]
        return out

    def command(self, frame: bytes, answers: int = 1) -> list[Response]:
        self.sock.sendall(frame)
        self.sent += len(frame)
        return [parse_response(f) for f in self.frames(answers)]


def test_new_connection_replaces_the_old_and_resets_the_unit(s3: RomServerThread) -> None:
    first = Wire(s3.url)
    assert len(first.command(encode_command(Op.SYNC, SYNC_PAYLOAD), 8)) == 8
    first.command(encode_command(Op.CHANGE_BAUDRATE, struct.pack("<II", 460800, 0)))
    assert s3.call(lambda srv: srv.loader.baud) == 460800
    second = Wire(s3.url)
    s3.wait_for(lambda srv: srv.connections == 2)
    try:
        dropped = first.sock.recv(100) == b""  # the old client is dropped...
    except ConnectionResetError:
        dropped = True  # ...with a FIN or a reset, as the OS likes
    assert dropped
    assert s3.call(lambda srv: srv.loader.baud) == 115200  # and the unit was reset
    assert second.command(encode_command(Op.SYNC, SYNC_PAYLOAD), 8)[0].value != 0
    first.close()
    second.close()


def test_hard_reset_write_reenters_download_mode_on_a_socket(s3: RomServerThread) -> None:
    wire = Wire(s3.url)
    wire.command(encode_command(Op.CHANGE_BAUDRATE, struct.pack("<II", 921600, 0)))
    (answer,) = wire.command(
        encode_command(Op.WRITE_REG, struct.pack("<IIII", 0x6000812C, 0, 1, 0))
    )
    assert answer.data == b"\x00" * 4
    while b"waiting for download" not in wire.raw:  # the banner follows the answer
        wire.raw += wire.sock.recv(1000)
    assert b"rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))" in wire.raw
    assert s3.call(lambda srv: srv.loader.baud) == 115200
    wire.close()


def test_state_dir_keeps_flash_and_efuses_across_restarts(tmp_path: Path) -> None:
    data = secrets.token_bytes(20_000)
    with RomServerThread("esp32s3", state_dir=tmp_path, mac="24:0a:c4:00:00:77") as rom:
        esp = esptool.connect_esp(port=rom.url, chip="esp32s3", before="no-reset")
        try:
            esptool.attach_flash(esp)
            esptool.write_flash(esp, [(0x9000, data)], no_progress=True, compress=True)
        finally:
            esp._port.close()
        rom.call(lambda srv: srv.efuses.burn("KEY_PURPOSE_3", 9))
    assert (tmp_path / "flash.bin").stat().st_size < 64 * 1024  # only written sectors
    with RomServerThread("esp32s3", state_dir=tmp_path) as rom:
        assert rom.call(lambda srv: srv.flash.read(0x9000, len(data))) == data
        assert rom.call(lambda srv: srv.efuses.mac.hex(":")) == "24:0a:c4:00:00:77"
        assert rom.call(lambda srv: srv.efuses.security_info().key_purposes[3]) == 9


def _flash_blocks(wire: Wire, count: int) -> None:
    begin = struct.pack("<IIIII", count * 0x400, count, 0x400, 0x10000, 0)
    assert wire.command(encode_command(Op.FLASH_BEGIN, begin))[0].data == b"\x00" * 4
    for seq in range(count):
        block = secrets.token_bytes(0x400)
        (answer,) = wire.command(encode_data_command(Op.FLASH_DATA, block, seq))
        assert answer.data == b"\x00" * 4


def test_wire_time_follows_the_baud_rate_without_spinning() -> None:
    with RomServerThread("esp32s3", wire_time=True) as rom:
        wire = Wire(rom.url)
        wire.command(encode_command(Op.SYNC, SYNC_PAYLOAD), 8)
        wire.sent = wire.received = 0
        wall, cpu = time.monotonic(), time.process_time()
        _flash_blocks(wire, 8)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        # Requests and answers take turns on the line: the sum of both at 10 bits a byte.
        expected = (wire.sent + wire.received) * 10 / 115200
        assert expected * 0.95 <= wall <= expected * 1.3 + 0.2
        assert cpu < 0.5 * wall  # sleeps on a schedule, never spins

        wire.command(encode_command(Op.CHANGE_BAUDRATE, struct.pack("<II", 921600, 0)))
        wire.sent = wire.received = 0
        fast = time.monotonic()
        _flash_blocks(wire, 8)
        fast = time.monotonic() - fast
        assert fast <= (wire.sent + wire.received) * 10 / 921600 * 1.3 + 0.2
        assert fast < wall / 3
        wire.close()


def test_rfc2217_lines_drive_en_and_io0() -> None:
    with RomServerThread("esp32s3", rfc2217=True) as rom:
        assert not rom.call(lambda srv: srv.loader.active)  # powered up with IO0 high
        port = serial.serial_for_url(f"{rom.url}?ign_set_control", timeout=5)
        try:
            # esptool's classic reset: EN low, release it, IO0 low while EN rises.
            port.dtr, port.rts = False, True
            port.dtr, port.rts = True, False
            banner = port.read_until(b"waiting for download\r\n")
            assert b"boot:0x0 (DOWNLOAD(USB/UART0))" in banner
            port.dtr = False
            port.write(encode_command(Op.SYNC, SYNC_PAYLOAD))
            answers = SlipDecoder().feed(port.read(8 * 14))
            assert len(answers) == 8
            # Hard reset with IO0 high: a normal boot, and the ROM face goes quiet.
            port.rts = True
            port.rts = False
            banner = port.read_until(b"(SPI_FAST_FLASH_BOOT)\r\n")
            assert banner.endswith(b"(SPI_FAST_FLASH_BOOT)\r\n")
            rom.wait_for(lambda srv: not srv.loader.active)
        finally:
            port.close()


def test_esptool_resets_through_rfc2217() -> None:
    with RomServerThread("esp32s3", rfc2217=True, mac="24:0a:c4:00:22:17") as rom:
        # esptool over RFC 2217 is slow (pyserial renegotiates the port on every timeout
        # change): one command, without the stub.
        cmd = [sys.executable, "-m", "esptool", "--chip", "esp32s3", "--port", rom.url]
        result = subprocess.run(
            [*cmd, "--no-stub", "read-mac"], capture_output=True, text=True, timeout=60
        )
        assert "24:0a:c4:00:22:17" in ok(result)  # default-reset got it into download mode
        rom.wait_for(lambda srv: not srv.loader.active)  # --after hard-reset: normal boot


def test_run_sim_rom_serves_until_sigterm() -> None:
    code = (
        "from ate.sim.rom.server import run_sim_rom\n"
        "raise SystemExit(run_sim_rom(0, 'esp32c3', None, False, False))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("socket://127.0.0.1:")
        result = run_tool("esptool", "esp32c3", url, ("--no-stub", "read-mac"), [])
        assert "ESP32-C3" in ok(result)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_run_sim_rom_rejects_unknown_chips(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_sim_rom(0, "esp8266", None, False, False) == 2
    assert "supported are esp32s3, esp32c3" in capsys.readouterr().err
