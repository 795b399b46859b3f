"""A station's state folder and the private files in it: the one place they are made.

The state folder holds the spool (with the provisioning journal), the records database
(the station's line store when no line database is given) and the audit
signing key: only the station's user may read them, so folders are made 0700 and files
0600 (a file that already existed is narrowed too; a folder only when ate made it).
Imports stdlib only.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> Path:
    """Make `path` (and missing parents) 0700; returns it. A folder that already exists
    keeps its mode: it may be a shared one (/tmp, a home) that is not ours to narrow."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=FOLDER_MODE, exist_ok=True)
        os.chmod(path, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` if missing, empty, as 0600 (its folder 0700); narrow an existing one."""
    private_folder(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def private_sqlite(path: Path) -> Path:
    """A SQLite database file made private before SQLite opens it, and its journal
    siblings (-wal, -shm, -journal) narrowed once they exist."""
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        sibling = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(sibling, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new 0600 file atomically (temp file, fsync, rename)."""
    private_folder(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


__all__ = ["private_file", "private_folder", "private_sqlite", "write_private"]
