"""Reading a file that an input names: a regular file within a size cap, or a refusal.

Every path read on behalf of an input file (the YAML files themselves, firmware images,
secrets, board descriptions, release manifests and their images, CA certificates and
keys) goes through `read_file`, so that a folder, FIFO, device or huge file is refused
at once with one sentence instead of a hang, a traceback or memory exhaustion.
Imports the standard library only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KiB = 1 << 10
MiB = 1 << 20

# Caps by what a file is. Real inputs are far smaller; the caps only bound the damage.
YAML_MAX = 1 * MiB  # sequences, fixtures, profiles, boards, manifests: a few KiB each
IMAGE_MAX = 16 * MiB  # a flash image cannot be larger than the largest ESP32 flash
PEM_MAX = 1 * MiB  # certificates, chains and keys
SECRET_MAX = 64 * KiB  # a factory secret, a PIN or a key password
LIBRARY_MAX = 256 * MiB  # a PKCS#11 module, which the HSM library loads itself
SLOT_LOG_MAX = 64 * MiB  # a slot log to replay: a unit's story is a few hundred KiB

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """Why a named file cannot be used: a sentence without the path (callers name it
    where the input names it)."""


def size_text(n: int) -> str:
    if n >= MiB:
        return f"{n / MiB:.1f} MiB".replace(".0 ", " ")
    if n >= KiB:
        return f"{n / KiB:.1f} KiB".replace(".0 ", " ")
    return f"{n} bytes"


def _check(st: os.stat_result, max_bytes: int) -> None:
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise FileRefused(f"is {kind}, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused("is not a regular file")
    if st.st_size > max_bytes:
        raise FileRefused(
            f"is too large ({size_text(st.st_size)}); at most {size_text(max_bytes)} allowed"
        )


def check_file(path: str | Path, max_bytes: int) -> None:
    """For a file another library opens (a PKCS#11 module): FileRefused unless it is a
    regular file within the cap. Opening a FIFO there would hang as surely as here."""
    try:
        _check(os.stat(path), max_bytes)
    except (FileNotFoundError, NotADirectoryError):
        raise FileRefused("no such file") from None
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror or exc}") from None


def read_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of the regular file `path`, at most `max_bytes`; FileRefused otherwise.

    The type and size are checked with stat before opening (opening a FIFO for reading
    would wait for a writer), the file is opened non-blocking, checked again on the open
    descriptor (it may have been swapped in between), and read no further than the cap
    (it may grow while being read).
    """
    try:
        _check(os.stat(path), max_bytes)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise FileRefused("no such file") from None
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror or exc}") from None
    try:
        _check(os.fstat(fd), max_bytes)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(max_bytes + 1 - total, MiB) or 1):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise FileRefused(f"is too large; at most {size_text(max_bytes)} allowed")
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
