"""`ate` as a user runs it: the real command line in a child process, this checkout on
its path, stdin fed (PINs, badge ids) and its output kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_ate(
    *args: str | Path, stdin: str = "", extra_path: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (REPO, *extra_path)))}
    return subprocess.run(
        [sys.executable, "-m", "ate.cli.main", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
