"""Flash one ESP32 through esptool's library API (v5), off the event loop.

`EspFlasher` owns one serial connection and one worker thread: every blocking esptool
call runs in that slot's thread, so four slots flash in parallel and the event loop never
waits. The fixture has already strapped the chip into its ROM loader, so esptool connects
with `before="no-reset"` and nothing here toggles DTR/RTS or resets the chip.

Log lines and progress are captured per thread (log_capture) and delivered on the event
loop thread, in order, before the call that produced them returns. esptool's exceptions
become `FlashError`s (errors.py). May import esptool and pyserial; nothing from ate.sim.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar

import esptool
import esptool.cmds
import esptool.loader
import esptool.targets
import esptool.util
from esp_pylib.errors import FatalError

from ate.drivers.esp import log_capture
from ate.drivers.esp.errors import (
    BaudRefused,
    DownloadModeDisabled,
    FlashError,
    ImageOverlap,
    ImageTooLarge,
    NoSync,
    PortProblem,
    PortUnavailable,
    SecureDownloadMode,
    VerifyFailed,
    WrongChip,
)
from ate.drivers.esp.log_capture import FlashProgress, SlotCapture

T = TypeVar("T")

ROM_BAUD: Final = 115200
SECTOR: Final = 0x1000  # the erase unit: esptool erases whole sectors around a write
# How long close() lets an operation in flight finish before it closes the port under it.
CLOSE_GRACE_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class SecurityInfo:
    """GET_SECURITY_INFO as the ROM reports it (works even in Secure Download Mode)."""

    flags: int
    secure_download: bool
    flash_crypt_cnt: int
    key_purposes: tuple[int, ...]
    chip_id: int | None
    api_version: int | None
    flags_set: tuple[str, ...]  # esptool's names of the set flag bits

    @property
    def flash_encryption(self) -> bool:
        """SPI_BOOT_CRYPT_CNT with an odd number of bits set means encryption is on."""
        return bin(self.flash_crypt_cnt).count("1") % 2 == 1

    @property
    def secure_boot(self) -> bool:
        return "SECURE_BOOT_EN" in self.flags_set


@dataclass(frozen=True, slots=True)
class ChipInfo:
    chip: str  # normalised like the constructor's `chip`: "esp32s3"
    description: str  # "ESP32-S3 (QFN56) (revision v0.2)"
    revision: int | None  # major * 100 + minor; None in Secure Download Mode
    features: tuple[str, ...]
    mac: str | None  # "aa:bb:cc:dd:ee:ff"; None in Secure Download Mode
    flash_size: int | None  # bytes, when the flash ID names a size
    security: SecurityInfo
    stub: bool  # the flasher stub is running (faster, compressed, larger blocks)
    baud: int  # the rate the link runs at now


@dataclass(frozen=True, slots=True)
class WriteResult:
    offset: int
    size: int
    md5: str  # of the image as given
    seconds: float
    wire_bytes: int | None  # payload esptool sent (deflated size when compressed)
    compressed: bool
    verified: bool  # esptool compared flash MD5 (impossible in Secure Download Mode)


def normalise_chip(name: str) -> str:
    """'ESP32-S3', 'esp32-s3', 'esp32s3' -> 'esp32s3' (esptool's spelling)."""
    return str(esptool.util.strip_chip_name(name))


def _mac(raw: Sequence[int] | None) -> str | None:
    return None if raw is None else ":".join(f"{b:02x}" for b in raw)


def check_images(images: Sequence[tuple[int, bytes]], flash_size: int | None) -> None:
    """Refuse a write plan before anything is sent: too large, overlapping, or sharing an
    erase sector (esptool erases whole sectors, so the second write would erase the
    first image's neighbouring bytes)."""
    for offset, data in images:
        if offset < 0:
            raise ValueError(f"negative flash offset {offset}")
        if not data:
            raise ValueError(f"empty image at {offset:#x}")
        if flash_size is not None and offset + len(data) > flash_size:
            raise ImageTooLarge(offset, len(data), flash_size)
    spans = sorted((offset, len(data)) for offset, data in images)
    for (a, alen), (b, blen) in itertools.pairwise(spans):
        if (a + alen - 1) // SECTOR >= b // SECTOR:
            raise ImageOverlap((a, alen), (b, blen), SECTOR)


def _port_problem(detail: str) -> PortProblem:
    m = detail.lower()
    # Nothing at that name: no such device node, or nothing listens on a socket:// port.
    if any(w in m for w in ("errno 2]", "no such file", "no such device", "connection refused")):
        return "gone"
    if "permission denied" in m:
        return "refused"
    if any(w in m for w in ("busy", "access is denied", "exclusively lock", "temporarily")):
        return "busy"
    return "gone"


class EspFlasher:
    """One slot's ROM-loader connection. `async with EspFlasher(...) as f:` connects."""

    def __init__(
        self,
        port: str,
        *,
        chip: str,
        baud: int = 460800,
        log: Callable[[str], None],
        progress: Callable[[FlashProgress], None] | None = None,
        stub: bool = True,
        connect_attempts: int = 3,
        label: str | None = None,
        verbose: bool = False,
    ) -> None:
        wanted = normalise_chip(chip)
        if wanted not in esptool.targets.CHIP_LIST:
            raise ValueError(f"unknown chip {chip!r}; esptool knows {esptool.targets.CHIP_LIST}")
        if baud <= 0 or connect_attempts <= 0:
            raise ValueError("baud and connect_attempts must be positive")
        self.port = port
        self.chip = wanted
        self.baud = baud
        self.label = label or port
        self._log = log
        self._progress = progress
        self._stub = stub
        self._attempts = connect_attempts
        self._verbose = verbose
        self._pool: ThreadPoolExecutor | None = None
        self._capture: SlotCapture | None = None
        # The esptool loader object: touched only from the worker thread (except an
        # emergency port close in close()).
        self._esp: Any = None
        self._info: ChipInfo | None = None
        self._download_disabled = False
        # What the worker is doing now (set and cleared in the worker thread).
        self._in_flight: str | None = None
        self._interruptible = False

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> EspFlasher:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def info(self) -> ChipInfo:
        if self._info is None:
            raise FlashError(f"{self.label}: not connected")
        return self._info

    async def connect(self) -> ChipInfo:
        """Open the port, identify the chip, start the stub, raise the baud rate."""
        if self._info is not None:
            return self._info
        if self._pool is not None:
            raise FlashError(f"{self.label}: connect already in progress")
        loop = asyncio.get_running_loop()
        self._capture = SlotCapture(
            self.label,
            _on_loop(loop, self._log),
            _on_loop(loop, self._progress) if self._progress else None,
            verbose=self._verbose,
        )
        # One thread per slot, registered with the log router before its first job.
        self._pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"esp-{self.label}",
            initializer=log_capture.register,
            initargs=(self._capture,),
        )
        try:
            self._info = await self._run("connect", self._connect_blocking)
        except BaseException:
            await self.close()
            raise
        return self._info

    async def close(self) -> None:
        """Close the port and stop the worker. Resets nothing: the fixture does that."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        self._info = None
        if self._in_flight is not None and self._interruptible:
            # A flash operation whose caller gave up (cancelled) is still running: the
            # flash is being redone anyway, so close the port under it now rather than
            # wait for the image to finish. eFuse burns are never interrupted.
            await asyncio.to_thread(self._abort_port)  # pyserial's close sleeps 0.3 s
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(pool, self._close_blocking)
        try:
            await asyncio.wait_for(asyncio.shield(job), CLOSE_GRACE_S)
        except TimeoutError:
            # An esptool call is still blocked on the port: closing it from here makes
            # that call fail, which frees the worker for the close job.
            await asyncio.to_thread(self._abort_port)
            await job
        finally:
            pool.shutdown(wait=False)

    # -- flash ------------------------------------------------------------------------

    async def write(
        self,
        images: Sequence[tuple[int, bytes]],
        *,
        compress: bool = True,
        pre_encrypted: bool = False,
    ) -> list[WriteResult]:
        """Write (offset, image) pairs, each verified by MD5 after writing. The whole
        plan is checked first; a refused plan writes nothing. `pre_encrypted`: the bytes
        are already ciphertext for the chip's burned flash-encryption key, so esptool's
        guard against plain text on an encrypting chip does not apply."""
        info = self._ready("write-flash", sdm_allowed=True)
        check_images(images, info.flash_size)
        results = []
        for offset, data in images:
            results.append(
                await self._run(
                    "write-flash",
                    self._write_blocking,
                    offset,
                    bytes(data),
                    compress,
                    pre_encrypted,
                )
            )
        return results

    async def md5(self, offset: int, size: int) -> str:
        """MD5 of a flash region, computed on the chip (lowercase hex)."""
        self._region(self._ready("md5"), offset, size)
        return await self._run("md5", self._md5_blocking, offset, size)

    async def verify(self, offset: int, image: bytes) -> None:
        """Raise VerifyFailed unless the flash at `offset` holds exactly `image`."""
        self._region(self._ready("verify-flash"), offset, len(image))
        await self._run("verify-flash", self._verify_blocking, offset, bytes(image))

    async def image_present(self, offset: int, image: bytes) -> bool:
        """True when the flash region already holds `image` (so a rewrite can be skipped)."""
        self._region(self._ready("md5"), offset, len(image))
        got = await self._run("md5", self._md5_blocking, offset, len(image))
        return got == hashlib.md5(image).hexdigest()

    async def read(self, offset: int, size: int) -> bytes:
        self._region(self._ready("read-flash"), offset, size)
        return await self._run("read-flash", self._read_blocking, offset, size)

    async def erase_region(self, offset: int, size: int) -> None:
        info = self._ready("erase-region", sdm_allowed=True)
        if offset % SECTOR or size % SECTOR:
            raise ValueError(
                f"erase offset {offset:#x} and size {size:#x} must be multiples of {SECTOR:#x}"
            )
        self._region(info, offset, size)
        await self._run("erase-region", self._erase_blocking, offset, size)

    # -- for EfuseSession -------------------------------------------------------------

    async def run_in_worker(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(esp, *args)` in this slot's thread with its log capture; esptool errors
        become FlashErrors. For drivers built on this connection (eFuses)."""
        self._ready(what, sdm_allowed=True)
        return await self._run(what, lambda: fn(self._esp, *args), interruptible=False)

    def adopt_loader(self, esp: Any) -> None:
        """espefuse reconnects after burning download-mode fuses, replacing the loader
        object; call from the worker thread so later calls use the live one."""
        _no_silent_reconnect(esp)
        self._esp = esp
        info = self._info
        if info is not None and esp.secure_download_mode and not info.security.secure_download:
            security = dataclasses.replace(info.security, secure_download=True)
            self._info = dataclasses.replace(info, security=security)

    def mark_download_disabled(self) -> None:
        """DIS_DOWNLOAD_MODE was burned: refuse every later call with that reason."""
        self._download_disabled = True

    # -- internals (event loop side) --------------------------------------------------

    def _ready(self, what: str, *, sdm_allowed: bool = False) -> ChipInfo:
        if self._download_disabled:
            raise DownloadModeDisabled(f"{what} on {self.label}")
        info = self.info
        if info.security.secure_download and not sdm_allowed:
            raise SecureDownloadMode(what)
        return info

    @staticmethod
    def _region(info: ChipInfo, offset: int, size: int) -> None:
        if offset < 0 or size <= 0:
            raise ValueError(f"bad flash region offset={offset:#x} size={size}")
        if info.flash_size is not None and offset + size > info.flash_size:
            raise ValueError(
                f"region [{offset:#x}, {offset + size:#x}) is past the end of the "
                f"{info.flash_size // 1024} KiB flash"
            )

    async def _run(
        self, what: str, fn: Callable[..., T], *args: Any, interruptible: bool = True
    ) -> T:
        """Run in the worker. Cancelling the caller does not stop esptool mid-command
        (threads cannot be killed); the call finishes, or close() cuts it short."""
        if self._pool is None:
            raise FlashError(f"{self.label}: not connected")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, functools.partial(self._guarded, what, interruptible, fn, *args)
        )

    def _abort_port(self) -> None:
        port = getattr(self._esp, "_port", None)
        if port is None:
            return
        cancel = getattr(port, "cancel_read", None)
        # Already failing: the worker's call reports whatever this causes.
        with contextlib.suppress(Exception):
            if cancel is not None:
                cancel()
            port.close()

    # -- internals (worker thread) ----------------------------------------------------

    def _guarded(self, what: str, interruptible: bool, fn: Callable[..., T], *args: Any) -> T:
        """Translate esptool's failures into reasons (in the worker thread, where the
        loader object lives)."""
        self._in_flight, self._interruptible = what, interruptible
        try:
            return fn(*args)
        except FlashError:
            raise
        except SystemExit as e:
            # esptool/espefuse call log.die() / sys.exit() in a few CLI-minded places;
            # in a library that must not end the station process.
            raise FlashError(f"{what}: esptool gave up (exit code {e.code})") from e
        except FatalError as e:
            # esptool wraps pyserial's open error in its own "busy or doesn't exist"
            # text; the wrapped exception says which of the two it was.
            cause = e.__cause__ or e.__context__
            raise self._translate(what, str(e), str(cause) if cause else str(e)) from e
        except OSError as e:  # pyserial's SerialException is an OSError
            raise PortUnavailable(self.port, "gone", f"{what}: {e}") from e
        finally:
            self._in_flight = None

    def _translate(self, what: str, message: str, cause: str) -> FlashError:
        first = message.strip().splitlines()[0] if message.strip() else message
        if "Could not open" in message:
            return PortUnavailable(self.port, _port_problem(cause), " ".join(cause.split()))
        if message.startswith("Failed to connect"):
            return NoSync(self.port, first)
        if "Secure Download Mode" in message or "secure download mode" in message:
            return SecureDownloadMode(what)
        return FlashError(f"{what} on {self.label} failed: {' '.join(message.split())}")

    def _connect_blocking(self) -> ChipInfo:
        esp = esptool.cmds.connect_esp(
            port=self.port,
            chip="auto",
            initial_baud=ROM_BAUD,
            before="no-reset",
            connect_attempts=self._attempts,
        )
        self._esp = esp
        found = normalise_chip(esp.CHIP_NAME)
        if found != self.chip:
            raise WrongChip(found, self.chip)
        si = esp.get_security_info()
        sdm = bool(esp.secure_download_mode)
        security = SecurityInfo(
            flags=int(si["flags"]),
            secure_download=sdm,
            flash_crypt_cnt=int(si["flash_crypt_cnt"]),
            key_purposes=tuple(int(p) for p in si["key_purposes"]),
            chip_id=si["chip_id"],
            api_version=si["api_version"],
            flags_set=tuple(name for name, on in si["parsed_flags"].items() if on),
        )
        description = f"{esp.CHIP_NAME} (secure download)"
        revision: int | None = None
        features: tuple[str, ...] = ()
        mac: str | None = None
        # eFuse registers are unreadable in Secure Download Mode.
        if not sdm:
            description = str(esp.get_chip_description())
            revision = int(esp.get_chip_revision())
            features = tuple(str(f) for f in esp.get_chip_features())
            mac = _mac(esp.read_mac("BASE_MAC"))
        if self._stub and not sdm:
            esp = esptool.run_stub(esp)
            self._esp = esp
        _no_silent_reconnect(esp)
        esptool.attach_flash(esp)
        flash_size = None
        if not sdm:
            size_name = esptool.cmds.detect_flash_size(esp)
            flash_size = esptool.util.flash_size_bytes(size_name)
            if flash_size:
                # The ROM assumes 2 MB until told; MD5 and reads past that would fail.
                esp.flash_set_parameters(flash_size)
        baud = self._set_baud(esp)
        # One line that identifies the unit in its own log (esptool's CLI prints this
        # from its command wrapper, which the library API skips).
        size_text = f"{flash_size >> 20} MiB flash" if flash_size else "flash size unknown"
        esptool.logger.log.print(
            f"Connected: {description}, MAC {mac or 'unreadable'}, {size_text}, "
            f"{'stub' if esp.IS_STUB else 'ROM loader'} at {baud} baud",
            markup=False,
        )
        return ChipInfo(
            chip=found,
            description=description,
            revision=revision,
            features=features,
            mac=mac,
            flash_size=flash_size,
            security=security,
            stub=bool(esp.IS_STUB),
            baud=baud,
        )

    def _set_baud(self, esp: Any) -> int:
        if self.baud == ROM_BAUD:
            return ROM_BAUD
        try:
            esp.change_baud(self.baud)
        except esptool.util.NotImplementedInROMError:
            esptool.logger.log.note(
                f"the {esp.CHIP_NAME} ROM cannot change baud rate; staying at {ROM_BAUD}"
            )
            return ROM_BAUD
        except (FatalError, OSError, ValueError) as e:
            raise BaudRefused(self.baud, " ".join(str(e).split())) from e
        # esptool 5.6 sends CHANGE_BAUDRATE without checking the loader's status, so a
        # refusal only shows as silence at the new rate: ask something cheap.
        try:
            if esp.secure_download_mode:  # no register access in this mode
                esp.get_security_info(cache=False)
            else:
                esp.read_reg(esptool.loader.ESPLoader.CHIP_DETECT_MAGIC_REG_ADDR)
        except (FatalError, OSError) as e:
            raise BaudRefused(
                self.baud,
                f"the loader does not answer at the new rate ({' '.join(str(e).split())})",
            ) from e
        return self.baud

    def _write_blocking(
        self, offset: int, data: bytes, compress: bool, pre_encrypted: bool = False
    ) -> WriteResult:
        assert self._capture is not None
        md5 = hashlib.md5(data).hexdigest()
        started = time.monotonic()
        with self._capture.stage("write", offset, len(data)) as stage:
            try:
                esptool.write_flash(
                    self._esp,
                    [(offset, data)],
                    compress=compress,
                    no_compress=not compress,
                    flash_size="keep",
                    force=pre_encrypted,
                )
            except FatalError as e:
                if "MD5 of file does not match" in str(e) or "flash region is empty" in str(e):
                    raise self._mismatch(offset, data, md5) from e
                raise
        wire = stage.wire_total
        return WriteResult(
            offset=offset,
            size=len(data),
            md5=md5,
            seconds=time.monotonic() - started,
            wire_bytes=wire,
            # esptool falls back to raw when deflate does not shrink the image.
            compressed=compress and (wire is None or wire < len(data)),
            verified=not self._esp.secure_download_mode,
        )

    def _mismatch(self, offset: int, data: bytes, expected: str) -> VerifyFailed:
        got = str(self._esp.flash_md5sum(offset, len(data)))
        erased = got == hashlib.md5(b"\xff" * len(data)).hexdigest()
        return VerifyFailed(offset, expected, got, erased=erased)

    def _md5_blocking(self, offset: int, size: int) -> str:
        return str(self._esp.flash_md5sum(offset, size))

    def _verify_blocking(self, offset: int, image: bytes) -> None:
        assert self._capture is not None
        expected = hashlib.md5(image).hexdigest()
        with self._capture.stage("verify", offset, len(image)):
            if self._md5_blocking(offset, len(image)) != expected:
                raise self._mismatch(offset, image, expected)

    def _read_blocking(self, offset: int, size: int) -> bytes:
        assert self._capture is not None
        with self._capture.stage("read", offset, size):
            data = esptool.read_flash(self._esp, offset, size, output=None, flash_size="keep")
        return bytes(data)

    def _erase_blocking(self, offset: int, size: int) -> None:
        assert self._capture is not None
        with self._capture.stage("erase", offset, size):
            esptool.erase_region(self._esp, offset, size)

    def _close_blocking(self) -> None:
        esp, self._esp = self._esp, None
        try:
            if esp is not None:
                esp._port.close()
        finally:
            log_capture.unregister()


def _no_silent_reconnect(esp: Any) -> None:
    """esptool's write_flash answers a lost connection by reopening the port and
    re-syncing with a default (DTR/RTS) reset, then writing on. On a fixture the reset
    lines belong to the fixture controller and a lost link is the slot's failure to
    report, so one attempt only."""
    esp.WRITE_FLASH_ATTEMPTS = 1


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[T], None]) -> Callable[[T], None]:
    """Deliver a worker thread's callback on the event loop, in call order."""

    def deliver(item: T) -> None:
        try:
            loop.call_soon_threadsafe(callback, item)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            return

    return deliver
