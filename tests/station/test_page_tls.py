"""The operator's page beyond loopback: only with sign-in and over HTTPS, said at
validation with the station file's line; served over TLS by the station, with the
session cookie marked Secure, and no plain HTTP answered on that port."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import ssl
from pathlib import Path

import yaml
from cryptography import x509

from tests.ate_cli import run_ate as ate
from tests.self_signed import self_signed, write_pem
from tests.station.conftest import running, wait_status, write_station


def page_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = self_signed(
        "station st1",
        days=1,
        extensions=(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ),
    )
    return write_pem(cert, key, folder / "page.crt", folder / "page.key")


def test_beyond_loopback_needs_signin_and_tls(tmp_path: Path) -> None:
    path = write_station(tmp_path, page={"host": "0.0.0.0", "port": 0})
    done = ate("validate", str(path))
    assert done.returncode == 2
    line = done.stderr.strip()
    assert line.startswith(f"{path}:12:") and "everyone must sign in there" in line
    doc = yaml.safe_load(path.read_text())
    doc["page"]["signin"] = True
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    done = ate("validate", str(path))
    assert done.returncode == 2 and "need HTTPS there (tls:" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_the_page_is_served_over_https(tmp_path: Path) -> None:
    cert, key = page_certificate(tmp_path)
    url = f"sqlite:///{tmp_path / 'line.db'}"
    path = write_station(
        tmp_path,
        [("fx1", {"slots": 1})],
        db=url,
        page={
            "host": "0.0.0.0",
            "port": 0,
            "signin": True,
            "tls": {"cert": cert.name, "key": key.name},
        },
    )
    done = ate("user", "add", "olga", "--role", "operator", "--db", url, stdin="4711\n")
    assert done.returncode == 0, done.stderr
    trust = ssl.create_default_context(cafile=str(cert))

    def talk(port: int) -> tuple[int, str, int, str]:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=trust, timeout=10)
        conn.request("GET", "/snapshot")
        snap = conn.getresponse()
        body = snap.read().decode()
        conn.request(
            "POST",
            "/signin",
            body=json.dumps({"name": "olga", "pin": "4711"}),
            headers={"Content-Type": "application/json"},
        )
        signin = conn.getresponse()
        signin.read()
        cookie = signin.getheader("set-cookie") or ""
        conn.close()
        return snap.status, body, signin.status, cookie

    def plain(port: int) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/snapshot")
            return str(conn.getresponse().status)
        except (http.client.HTTPException, OSError) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    async with running(path) as station:
        assert station.page is not None and station.page.url.startswith("https://")
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 1)
        port = int(station.page.url.rsplit(":", 1)[1].strip("/"))
        status, body, signed, cookie = await asyncio.to_thread(talk, port)
        assert status == 200 and json.loads(body)["station"] == "st1"
        assert signed == 200
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "secure" in attrs and "httponly" in attrs and "samesite=strict" in attrs
        assert await asyncio.to_thread(plain, port) != "200"
