"""bench/pki.py runs (in a child process: it makes its own SoftHSM2 token and SOFTHSM2_CONF
is per process) and reports the figures it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_issuance_throughput_reports_rates() -> None:
    script = "import json; from bench.pki import issuance_throughput as t; print(json.dumps(t(5)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"certs_per_s", "ms_per_cert", "file_ca_certs_per_s"}
    assert all(value > 0 for value in figures.values())
    assert abs(figures["ms_per_cert"] * figures["certs_per_s"] - 1000.0) < 1e-6


def test_bench_module_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.pki", "3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "PKCS#11 (SoftHSM2):" in result.stdout and "file CA:" in result.stdout
