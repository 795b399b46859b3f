"""`python -m ate.instruments.twins [--port 5025]`: a simulated bench in the foreground, a
PSU, a DMM (reading the rail the mux closed), a mux and a shield box on consecutive ports
of 127.0.0.1, with their VISA resources printed for a fixture file's `instruments:`.
Ctrl-C ends it.

Imports this package only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from ate.instruments.twins.scpi_twin import DmmTwin, MuxTwin, PsuTwin, ScpiTwin, ShieldBoxTwin

# Relay -> volts: slot N's 3v3 rail on relay N01, its 1v8 on N02 (four slots).
RAILS = {100 * n + k: v for n in range(1, 5) for k, v in ((1, 3.30), (2, 1.80))}


def bench() -> dict[str, ScpiTwin]:
    psu = PsuTwin(outputs=4)
    for ch in psu.channels.values():
        ch.load_ohms = 100.0  # 50 mA at 5 V: an idle devkit
    mux = MuxTwin(rails=RAILS)
    return {"supply": psu, "dmm": DmmTwin(volts=mux.level), "mux": mux, "shield": ShieldBoxTwin()}


async def serve(first_port: int) -> None:
    twins = bench()
    try:
        for n, (role, twin) in enumerate(twins.items()):
            await twin.serve(port=first_port + n if first_port else 0)
            print(f"{role:7} {twin.resource}  idn {twin.idn}", flush=True)
        await asyncio.Event().wait()
    finally:
        for twin in twins.values():
            await twin.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ate.instruments.twins")
    parser.add_argument("--port", type=int, default=5025, help="first port (0: any free)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
