"""DutServer through the real transport: a pty or a socket, pyserial-asyncio-fast, the codec."""

from __future__ import annotations

import asyncio
import os

import pytest
from sim_helpers import Duts, LineClient, make_spec

from ate.protocol.lines import Corrupt, ErrorReply, LogLine, Notice, Reply, encode_request
from ate.sim.board import SimBoard
from ate.sim.dut_server import DutServer, Transport

TRANSPORTS: list[Transport] = ["pty", "socket"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_boot_prints_noise_then_ready(duts: Duts, transport: Transport) -> None:
    server, client, ready = await duts.booted(transport=transport)
    assert server.endpoint.startswith("/dev/" if transport == "pty" else "socket://127.0.0.1:")
    board = server.board
    assert board is not None
    assert ready.fields == {
        "proto": "1",
        "fw": "ate-testfw/1.2.3",
        "chip": "esp32s3",
        "mac": board.mac,
    }
    logs = client.logs()
    assert any("ESP-ROM:esp32s3" in line for line in logs)  # after a power-up glitch byte
    assert any(line.startswith("rst:0x1 (POWERON)") for line in logs)
    assert any(line.startswith("I (") and "ate_testfw" in line for line in logs)
    assert not any("\x1b" in line for line in logs)  # colour codes were there, host strips
    ready_at = client.events.index(ready)
    assert all(isinstance(e, LogLine) for e in client.events[:ready_at])
    assert await client.ok("ping") == {}


async def test_quiet_board_prints_only_ready(duts: Duts) -> None:
    _, client, _ = await duts.booted(make_spec(boot_noise=False, boot_ms=0))
    assert [type(e) for e in client.events] == [Notice]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_command_answers_over_the_wire(duts: Duts, transport: Transport) -> None:
    server, c, _ = await duts.booted(transport=transport)
    assert server.board is not None
    assert (await c.ok("info"))["mac"] == server.board.mac
    await c.ok("gpio.mode", 4, "out")
    await c.ok("gpio.mode", 5, "in")
    await c.ok("gpio.set", 4, 1)
    assert await c.ok("gpio.get", 5) == {"level": "1"}
    assert await c.ok("i2c.probe", 0, "0x68") == {"ack": "1"}
    assert await c.ok("i2c.read", 0, "0x68", "0x75", 1) == {"data": "68"}
    await c.ok("i2c.write", 0, "0x68", "0x20", "beef")
    assert await c.ok("i2c.read", 0, "0x68", "0x20", 2) == {"data": "beef"}
    assert await c.ok("spi.jedec", 1) == {"id": "0xEF4017"}
    assert await c.ok("spi.xfer", 1, "9f000000") == {"data": "ffef4017"}
    assert 1600 < int((await c.ok("adc.read", 3, samples=8))["mv"]) < 1700
    await c.ok("power.mode", "active")
    assert set(await c.ok("rf.golden", 1, 50)) == {"rssi", "freq_offset", "per"}
    assert int((await c.ok("sys.uptime"))["ms"]) >= 20
    assert await c.err("i2c.read", 0, "0x50", 0, 1) == "EHW"
    assert await c.err("gpio.set", 5, 1) == "EARG"
    assert await c.err("flash.erase") == "EUNKNOWN"


async def test_same_seed_same_unit_other_slot_other_unit(duts: Duts) -> None:
    readies = []
    for slot in (1, 1, 2):
        _, _, ready = await duts.booted(seed=99, slot=slot)
        readies.append(ready.fields["mac"])
    assert readies[0] == readies[1] != readies[2]


async def test_typed_request_without_checksum_is_accepted(duts: Duts) -> None:
    _, client, _ = await duts.booted()
    client.send(b"\r\n!77 gpio.get 0\r\n")  # a person at miniterm
    reply = await client.next(lambda e: isinstance(e, Reply) and e.id == 77)
    assert reply == Reply(77, {"level": "1"})


async def test_wrong_checksum_gets_eproto_under_its_id(duts: Duts) -> None:
    _, client, _ = await duts.booted()
    client.send(encode_request(31, "ping").replace(b"ping", b"pong"))
    reply = await client.next(lambda e: isinstance(e, ErrorReply))
    assert reply == ErrorReply(31, "EPROTO", "checksum mismatch")
    assert await client.ok("ping", req_id=31) == {}  # the resend executes: EPROTO isn't kept


async def test_host_log_lines_and_codec_choking_garbage_are_ignored(duts: Duts) -> None:
    server, client, _ = await duts.booted()
    # "!²" makes the codec raise (reported); the server loses that line alone.
    client.send(b"hello there\n!\xc2\xb2 ping\n!" + b"1" * 5000 + b" ping\n")
    assert await client.ok("ping", req_id=8) == {}
    assert server.handled == 1


async def test_resend_with_same_id_returns_the_same_bytes(duts: Duts) -> None:
    server, client, _ = await duts.booted()
    line = encode_request(12, "sys.uptime")
    client.send(line)
    first = await client.next(lambda e: isinstance(e, Reply) and e.id == 12)
    await client.ok("gpio.mode", 4, "out", req_id=13)
    await client.ok("gpio.set", 4, 1, req_id=14)
    client.send(encode_request(14, "gpio.set", 4, 1))  # resend of the last one
    await server.wait_handled(4)
    client.send(line)  # 12 is no longer the last answered: executed anew
    second = await client.next(lambda e: isinstance(e, Reply) and e.id == 12)
    assert int(second.fields["ms"]) >= int(first.fields["ms"])  # type: ignore[union-attr]
    client.send(line)
    third = await client.next(lambda e: isinstance(e, Reply) and e.id == 12)
    assert third == second
    assert sum(isinstance(e, Reply) and e.id == 14 for e in client.events) == 2


async def test_power_off_is_silent_and_power_on_boots_again(duts: Duts) -> None:
    server, client, first = await duts.booted()
    server.power(False)
    assert server.board is not None and server.board.current_ma() == 0.0
    client.send(encode_request(500, "ping"))
    server.power(True)
    again = await client.notice("READY")
    assert again == first
    assert await client.ok("ping", req_id=501) == {}
    assert not client.answered(500)
    assert server.handled == 1


async def test_reset_boots_again_and_boot_mode_is_deaf(duts: Duts) -> None:
    server, client, _ = await duts.booted()
    server.reset(boot_mode=False)
    await client.notice("READY")
    server.reset(boot_mode=True)
    await client.next(lambda e: isinstance(e, LogLine) and e.text == "waiting for download")
    assert "rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))" in client.logs()
    client.send(encode_request(600, "ping"))
    server.reset(boot_mode=False)  # back to the test firmware
    await client.notice("READY")
    assert await client.ok("ping", req_id=601) == {}
    assert not client.answered(600)


async def test_sys_reboot_answers_then_boots(duts: Duts) -> None:
    _, client, _ = await duts.booted()
    assert await client.ok("sys.reboot") == {}
    await client.notice("READY")
    assert any(line.startswith("rst:0xc (RTC_SW_CPU_RST)") for line in client.logs())
    assert int((await client.ok("sys.uptime"))["ms"]) < 1000


async def test_light_sleep_is_deaf_then_awake(duts: Duts) -> None:
    server, client, _ = await duts.booted()
    board = server.board
    assert board is not None
    await client.ok("power.mode", "light_sleep", hold_ms=80)
    assert 0.7 < board.current_ma() < 0.9
    client.send(encode_request(700, "ping"))  # lost: the UART sleeps
    await client.notice("AWAKE")
    assert await client.ok("ping", req_id=701) == {}
    assert not client.answered(700)
    assert board.mode == "idle"


async def test_deep_sleep_boots_again(duts: Duts) -> None:
    server, client, _ = await duts.booted()
    board = server.board
    assert board is not None
    await client.ok("power.mode", "deep_sleep", hold_ms=50)
    assert board.current_ma() < 0.02
    client.send(encode_request(800, "ping"))
    await client.notice("READY")
    assert any(line.startswith("rst:0x5 (DSLEEP)") for line in client.logs())
    assert await client.ok("ping", req_id=801) == {}
    assert not client.answered(800)


async def test_hang_after_then_reset_recovers(duts: Duts) -> None:
    server, client, _ = await duts.booted(make_spec(faults={"hang_after": 2}))
    await client.ok("ping")
    await client.ok("ping")
    client.send(encode_request(900, "ping"))
    await server.wait_handled(3)
    client.send(encode_request(901, "ping"))  # a hung chip reads nothing at all
    server.reset()
    await client.notice("READY")  # everything before this in the stream has arrived
    assert not client.answered(900) and not client.answered(901)
    assert await client.ok("ping") == {}


async def test_no_ready_boots_with_noise_but_stays_mute(duts: Duts) -> None:
    server = await duts.server(make_spec(faults={"no_ready": True}))
    client = await duts.client(server)
    server.power(True)
    await client.next(lambda e: isinstance(e, LogLine) and "test firmware" in e.text)
    with pytest.raises(TimeoutError):
        await client.request("ping", timeout=0.3)
    assert not any(isinstance(e, Notice) for e in client.events)


async def test_drop_reply_executes_but_loses_the_answer(duts: Duts) -> None:
    server, client, _ = await duts.booted(make_spec(faults={"drop_reply": {"probability": 1}}))
    client.send(encode_request(40, "gpio.mode", 4, "out"))
    await server.wait_handled(1)
    server.reset()
    await client.notice("READY")
    assert not client.answered(40)
    assert server.handled == 1


async def test_garbage_on_its_own_line_precedes_every_reply(duts: Duts) -> None:
    spec = make_spec(faults={"garbage": {"probability": 1, "max_bytes": 12}})
    _, client, _ = await duts.booted(spec)
    for _ in range(10):
        before = len(client.events)
        assert await client.ok("gpio.get", 0) == {"level": "1"}
        assert len(client.events) - before >= 2  # noise, then the reply


async def test_garbage_mid_line_is_survived_by_resending(duts: Duts) -> None:
    spec = make_spec(faults={"garbage": {"probability": 1, "max_bytes": 10, "mid_line": True}})
    server, client, _ = await duts.booted(spec)
    for _ in range(20):
        reply = await client.request("gpio.get", 0, resend_on_corrupt=20)
        assert reply == Reply(reply.id, {"level": "1"})
    corrupt = sum(isinstance(e, Corrupt) for e in client.events)
    assert corrupt > 0  # some replies were broken and resent with the same id ...
    assert server.board is not None and server.board.requests_since_boot == 20 + corrupt
    glued = [e for e in client.events if isinstance(e, LogLine)]
    assert glued  # ... and some only carried noise in front


async def test_latency_delays_the_reply(duts: Duts) -> None:
    spec = make_spec(latency_ms={"default": 0, "adc": 60})
    _, client, _ = await duts.booted(spec)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await client.ok("ping")
    t1 = loop.time()
    await client.ok("adc.read", 3)
    t2 = loop.time()
    assert t2 - t1 >= 0.055
    assert t1 - t0 < t2 - t1


async def test_servers_in_one_loop_do_not_block_each_other(duts: Duts) -> None:
    _, slow_client, _ = await duts.booted(make_spec(latency_ms={"adc": 2000}))
    _, fast_client, _ = await duts.booted()
    pending = asyncio.ensure_future(slow_client.request("adc.read", 3))
    for _ in range(20):
        await fast_client.ok("ping")
    assert not pending.done()
    pending.cancel()


async def test_pty_client_can_close_and_reopen(duts: Duts) -> None:
    server, client, _ = await duts.booted()
    await client.close()
    for _ in range(2):
        again = await LineClient.open(server.endpoint)
        duts.clients.append(again)
        assert await again.ok("gpio.get", 0) == {"level": "1"}
        await again.close()


async def test_socket_new_connection_replaces_the_old_one(duts: Duts) -> None:
    server, old, _ = await duts.booted(transport="socket")
    new = await duts.client(server)
    async with asyncio.timeout(3):
        await old._pump_task  # the server closed the old connection
    assert await new.ok("ping") == {}


async def test_empty_server_serves_a_silent_port() -> None:
    server = DutServer(None, "socket")
    await server.start()
    try:
        client = await LineClient.open(server.endpoint)
        server.power(True)
        server.reset()
        with pytest.raises(TimeoutError):
            await client.request("ping", timeout=0.2)
        await client.close()
    finally:
        await server.stop()


async def test_stop_removes_the_pty() -> None:
    server = DutServer(SimBoard(make_spec()), "pty")
    await server.start()
    path = server.endpoint
    assert await asyncio.to_thread(os.path.exists, path)
    await server.stop()
    assert not await asyncio.to_thread(
        os.path.exists, path
    )  # devpts drops the node once both ends are closed


async def test_zero_latency_adds_no_sleep(duts: Duts, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, result: object = None) -> object:
        sleeps.append(delay)
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    _, client, _ = await duts.booted(make_spec(boot_ms=0, boot_noise=False))
    for _ in range(10):
        await client.ok("gpio.get", 0)
    assert sleeps == []
    await client.ok("power.mode", "active")  # a family with latency does sleep
    _slow, slow_client, _ = await duts.booted(make_spec(boot_ms=0, latency_ms={"gpio": 1}))
    await slow_client.ok("gpio.get", 0)
    assert sleeps == [0.001]


async def test_requests_during_boot_are_lost(duts: Duts) -> None:
    server = await duts.server(make_spec(boot_ms=40))
    client = await duts.client(server)
    server.power(True)
    client.send(encode_request(300, "ping"))
    await client.notice("READY")
    assert await client.ok("ping", req_id=301) == {}
    assert not client.answered(300)
    assert server.handled == 1
