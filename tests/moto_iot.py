"""moto's AWS IoT in server mode on 127.0.0.1, for the cloud-registration tests: a real
HTTP endpoint boto3 talks to, started on a port chosen beforehand (so a test can use the
port while nothing listens: the cloud away). moto keeps its accounts in the process, so
each start resets them: tests sharing a worker process never see each other's things."""

from __future__ import annotations

import socket
import urllib.request

from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(port: int) -> ThreadedMotoServer:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    reset = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10) as answer:
        assert answer.status == 200
    return server
