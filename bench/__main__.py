"""`python -m bench`: every benchmark in one run, printed as a Markdown table.

Install with `pip install -e '.[dev,bench]'` (OpenHTF is a bench-only extra).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

import yaml

from ate.pki.errors import PkiError
from ate.pki.softhsm import find_module
from bench import (
    flashing,
    line_time,
    overhead,
    panel,
    pki,
    provision,
    report,
    rf,
    store,
    transport,
)
from bench.simproc import SEQUENCE


def _quiet_openhtf() -> overhead.Overhead | None:
    # OpenHTF prints a banner per test to stdout; keep our table readable.
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            return overhead.openhtf_overhead()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _variant(tmp: Path, name: str, **changes: object) -> Path:
    """The example sequence with top-level or test_firmware fields changed."""
    doc = yaml.safe_load(SEQUENCE.read_text())
    doc["test_firmware"]["path"] = str((SEQUENCE.parent / doc["test_firmware"]["path"]).resolve())
    for key, value in changes.items():
        if key == "flash":
            doc["test_firmware"]["flash"] = value
        else:
            doc[key] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _store_rows(tmp: Path) -> list[tuple[str, str, str]]:
    """Unit records written per second, one transaction each as a station writes them."""
    rows = []
    rate = store.records_per_second(f"sqlite:///{tmp / 'ingest.db'}", 500)
    rows.append(("unit records written, SQLite", f"{rate:,.0f} records/s", "WAL, fsync"))
    try:
        with store.pg_schema() as url:
            rate = store.records_per_second(url, 500)
        rows.append(("unit records written, PostgreSQL", f"{rate:,.0f} records/s", "127.0.0.1"))
    except Exception as exc:  # no server here: say so, the other rows still count
        rows.append(("unit records written, PostgreSQL", "not reachable", str(exc)[:60]))
    return rows


def _issuance_row() -> tuple[str, str, str]:
    name = "certificate issuance through PKCS#11 (SoftHSM2)"
    try:
        find_module()
    except PkiError as exc:  # a fresh machine: say what to install, the other rows count
        return (name, "skipped", f"{exc} (Debian: apt-get install softhsm2)")
    issued = pki.issuance_throughput(500)
    return (
        name,
        f"{issued['certs_per_s']:.0f} certs/s",
        f"{issued['ms_per_cert']:.2f} ms each, one thread; file CA "
        f"{issued['file_ca_certs_per_s']:.0f} certs/s",
    )


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    ate = overhead.ate_overhead()
    htf = _quiet_openhtf()
    if htf is None:
        rows.append(("(a) OpenHTF", "not installed", "pip install -e '.[bench]'"))
    rows.append(
        (
            "(a) overhead per step, no I/O",
            f"{ate.per_step_us:.1f} us",
            f"OpenHTF {htf.per_step_us:.0f} us: {htf.per_step_us / ate.per_step_us:.0f}x lower"
            if htf
            else "",
        )
    )
    rows.append(
        (
            "(a) overhead per measurement",
            f"{ate.per_measurement_us:.1f} us",
            f"OpenHTF {htf.per_measurement_us:.0f} us: "
            f"{htf.per_measurement_us / ate.per_measurement_us:.0f}x lower"
            if htf
            else "",
        )
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for kind in ("pty", "socket"):
            rt = transport.round_trip(tmp, kind)
            rows.append(
                (
                    f"(b) round trip over {kind}",
                    f"{rt['median_ms']:.3f} ms median",
                    f"p99 {rt['p99_ms']:.3f} ms, n={rt['n']}",
                )
            )
        # Issue 2's figures are about the test executive: the units come with the test
        # firmware and the panel does not touch the ROM loader (flash: never).
        tests_only = _variant(tmp, "tests-only", flash="never")
        strict = _variant(tmp, "in-order", flash="never", schedule="in_order")
        one = panel.run_panels(tmp, 1, 1, sequence=tests_only)
        four = panel.run_panels(tmp, 1, 4, sequence=tests_only)
        rows.append(
            (
                "(c) panel wall time, 4 slots / 1 slot",
                f"{four['wall_s'] / one['wall_s']:.3f}",
                f"{four['wall_s']:.2f} s / {one['wall_s']:.2f} s; lower bound "
                f"{max(one['wall_s'], four['busiest_resource_s']) / one['wall_s']:.3f}",
            )
        )
        one_strict = panel.run_panels(tmp, 1, 1, sequence=strict)
        four_strict = panel.run_panels(tmp, 1, 4, sequence=strict)
        rows.append(
            (
                "(c) same, `schedule: in_order`",
                f"{four_strict['wall_s'] / one_strict['wall_s']:.3f}",
                f"{four_strict['wall_s']:.2f} s / {one_strict['wall_s']:.2f} s",
            )
        )
        eight = panel.run_panels(tmp, 8, 4, sequence=tests_only)
        rows.append(
            (
                "(d) 8 fixtures x 4 slots / one panel",
                f"{eight['wall_s'] / four['wall_s']:.3f}",
                f"{eight['wall_s']:.2f} s / {four['wall_s']:.2f} s",
            )
        )
        rows.append(
            (
                "(d) CPU of the executive, 32 slots",
                f"{eight['cpu_pct']:.0f} % of one core",
                f"{eight['cpu_s']:.2f} s CPU per panel of 32 units "
                f"({eight['cpu_s'] / 32 * 1e3:.0f} ms a unit)",
            )
        )
        # The whole flow: each unit is also identified through its ROM loader by esptool
        # (stub upload, flash detection) and its test firmware found in place by MD5.
        full_one = panel.run_panels(tmp, 1, 1)
        full_four = panel.run_panels(tmp, 1, 4)
        full_eight = panel.run_panels(tmp, 8, 4)
        rows.append(
            (
                "(c+) with the ROM phase, 4 slots / 1 slot",
                f"{full_four['wall_s'] / full_one['wall_s']:.3f}",
                f"{full_four['wall_s']:.2f} s / {full_one['wall_s']:.2f} s",
            )
        )
        rows.append(
            (
                "(d+) with the ROM phase, 8 x 4 / one panel",
                f"{full_eight['wall_s'] / full_four['wall_s']:.3f}",
                f"{full_eight['wall_s']:.2f} s / {full_four['wall_s']:.2f} s; executive CPU "
                f"{full_eight['cpu_s'] / 32 * 1e3:.0f} ms a unit",
            )
        )
        rows += flashing.run(tmp)
        rows += provision.run(tmp)
        rows += line_time.run(tmp)
        rows += rf.run(tmp)
        rows.append(_issuance_row())
        rows += _store_rows(tmp)
        built = report.report_build_seconds(100_000)
        rows.append(
            (
                "yield report, 100,000 units (SQLite)",
                f"{built['total_s']:.2f} s",
                f"goal < 10 s; load {built['report_input_s']:.2f} s, render "
                f"{built['render_s']:.2f} s",
            )
        )
    print(
        f"ate bench on {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {platform.machine()}\n"
    )
    print("| measure | result | context |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
