#!/usr/bin/env python3
"""Differential test: the firmware's request parser against the host codec's.

Random request-like lines (valid, truncated, mutated, with noise and odd whitespace) go
through ate.protocol.lines.parse_host_line() and through main/protocol.c (via
test/host/parse_driver.c); every line must be classified the same way, with the same id,
command, arguments and options. Run by `make -C firmware/test_fw/test/host fuzz`.

    fuzz_vs_host.py <parse_driver binary> [seed] [count]
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from ate.protocol.lines import Corrupt, LogLine, crc16, parse_host_line

MAX_TOKENS = 16  # ATE_MAX_TOKENS: the firmware answers EARG beyond it, the host has no limit
ALPHABET = [*"!*= \t.abcxyz_0123456789ABCDEF", "\x01", "\x1c", "\x7f", "!1", "!12 ", "0x"]


def random_line(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30)))
    command = rng.choice(["ping", "gpio.get", "a.b_c", "x", "Ping", "a..b"])
    tokens = [
        rng.choice(["1", "0x1f", "abc", "k=v", "=v", "k=", "a=b=c", "4*"])
        for _ in range(rng.randint(0, 5))
    ]
    req_id = rng.choice(["1", "7", "65535", "0", "65536", "007", "000007", "7x"])
    body = f"!{req_id} {command}" + "".join(rng.choice([" ", "  ", "\t"]) + t for t in tokens)
    if rng.random() < 0.6:
        body += f"*{crc16(body.encode('latin-1')):04X}"
    if rng.random() < 0.2:
        body = rng.choice(["xx", "@", "!", "!!", "\x00"]) + body
    if rng.random() < 0.2:
        body += rng.choice([" ", "  ", "\t", "*", "x"])
    if rng.random() < 0.1:
        i = rng.randrange(len(body))
        body = body[:i] + rng.choice(ALPHABET) + body[i + 1 :]
    return body


def host_view(line: str) -> str:
    event = parse_host_line(line)
    if isinstance(event, LogLine):
        return "noise"
    if isinstance(event, Corrupt):
        return "corrupt"
    if len(event.args) + len(event.kwargs) > MAX_TOKENS:
        return "toomany"
    return (
        f"req {event.id} {event.command}"
        + "".join(f" a:{a}" for a in event.args)
        + "".join(f" k:{k}={v}" for k, v in event.kwargs.items())
    )


def device_view(raw: str) -> str:
    """The driver lists repeated keys in order; the host keeps the last value of each key
    at its first position (a dict). The firmware's ate_option() also takes the last one."""
    if not raw.startswith("req "):
        return raw
    parts = raw.split(" ")
    options: dict[str, str] = {}
    for part in parts[3:]:
        if part.startswith("k:"):
            key, _, value = part[2:].partition("=")
            options[key] = value
    args = [p for p in parts[3:] if p.startswith("a:")]
    return (
        " ".join(parts[:3])
        + "".join(f" {a}" for a in args)
        + "".join(f" k:{k}={v}" for k, v in options.items())
    )


def main() -> int:
    driver = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    rng = random.Random(seed)
    lines = [random_line(rng) for _ in range(count)]
    feed = "".join(line.encode("latin-1").hex() + "\n" for line in lines)
    run = subprocess.run([driver], input=feed.encode(), capture_output=True, check=True)
    out = run.stdout.decode().splitlines()
    assert len(out) == len(lines), (len(out), len(lines))
    failed = 0
    for line, raw in zip(lines, out, strict=True):
        want, got = host_view(line), device_view(raw)
        if want != got:
            failed += 1
            if failed <= 10:
                print(f"MISMATCH {line!r}\n  host:   {want}\n  device: {got}", file=sys.stderr)
    print(f"{count - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
