"""Why a flash or eFuse operation was refused or failed, in words an operator can act on.

Every exception here is a `FlashError`; its message is the reason, complete enough to
show on a slot tile or in a log without the traceback. Imports nothing from esptool, so
callers can catch these without importing the library.
"""

from __future__ import annotations

from typing import Literal

PortProblem = Literal["busy", "gone", "refused"]

# Commands the ROM loader still accepts in Secure Download Mode (esptool 5.6,
# esptool/__init__.py prepare_esp_object).
SDM_ALLOWED = ("get-security-info", "write-flash", "erase-region")


class FlashError(Exception):
    """Base of every failure of the esp drivers; str() is the whole reason."""


class WrongChip(FlashError):
    """The chip in the slot is not the one the sequence was written for."""

    def __init__(self, found: str, wanted: str) -> None:
        self.found, self.wanted = found, wanted
        super().__init__(
            f"wrong chip: found {found}, this station expects {wanted} "
            "(wrong board in the slot, or the fixture/sequence names the wrong chip)"
        )


class PortUnavailable(FlashError):
    """The serial port could not be opened or vanished: busy, gone or refused."""

    def __init__(self, port: str, problem: PortProblem, detail: str) -> None:
        self.port, self.problem, self.detail = port, problem, detail
        hint = {
            "busy": "another program (a terminal, a second station) holds it open",
            "gone": "the adapter is unplugged or the port name is wrong",
            "refused": "no permission to open it (is the station user in 'dialout'?)",
        }[problem]
        super().__init__(f"port {port} {problem}: {hint} ({detail})")


class NoSync(FlashError):
    """The port opened but the ROM loader never answered SYNC."""

    def __init__(self, port: str, detail: str) -> None:
        self.port, self.detail = port, detail
        super().__init__(
            f"no answer from the ROM loader on {port}: the chip is not in download mode "
            "(strapping, power, EN), TX/RX are not connected, or download mode is "
            f"disabled by eFuse ({detail})"
        )


class DownloadModeDisabled(FlashError):
    """DIS_DOWNLOAD_MODE is burned: the ROM loader no longer talks to anyone."""

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(
            "download mode is disabled by eFuse (DIS_DOWNLOAD_MODE): the ROM loader "
            "accepts no more commands; this is permanent" + (f" ({detail})" if detail else "")
        )


class SecureDownloadMode(FlashError):
    """The chip is in Secure Download Mode and the operation is not one it allows."""

    def __init__(self, operation: str, allowed: tuple[str, ...] = SDM_ALLOWED) -> None:
        self.operation, self.allowed = operation, allowed
        super().__init__(
            f"{operation} is not possible: the chip is in Secure Download Mode "
            f"(ENABLE_SECURITY_DOWNLOAD burned); it only allows {', '.join(allowed)}"
        )


class ImageTooLarge(FlashError):
    """An image does not fit in the flash chip at the offset given."""

    def __init__(self, offset: int, size: int, flash_size: int) -> None:
        self.offset, self.size, self.flash_size = offset, size, flash_size
        super().__init__(
            f"image of {size} bytes at {offset:#x} ends at {offset + size:#x}, past the "
            f"end of the {flash_size // 1024} KiB flash; nothing was written"
        )


class ImageOverlap(FlashError):
    """Two images would overwrite each other (or share an erase sector)."""

    def __init__(self, first: tuple[int, int], second: tuple[int, int], sector: int) -> None:
        self.first, self.second = first, second
        (a, alen), (b, blen) = first, second
        super().__init__(
            f"images overlap: [{a:#x}, {a + alen:#x}) and [{b:#x}, {b + blen:#x}) touch "
            f"the same {sector // 1024} KiB erase sector, so writing one erases the "
            "other; nothing was written"
        )


class VerifyFailed(FlashError):
    """Flash content differs from the image after writing (or when checked later)."""

    def __init__(
        self, offset: int, expected_md5: str, got_md5: str, *, erased: bool = False
    ) -> None:
        self.offset, self.expected_md5, self.got_md5 = offset, expected_md5, got_md5
        self.erased = erased
        empty = " (the region reads as erased: the write never landed)" if erased else ""
        super().__init__(
            f"flash at {offset:#x} does not match the image: expected MD5 {expected_md5}, "
            f"flash has {got_md5}{empty}"
        )


class BaudRefused(FlashError):
    """The adapter or the loader would not switch to the requested baud rate."""

    def __init__(self, baud: int, reason: str) -> None:
        self.baud, self.reason = baud, reason
        super().__init__(
            f"could not switch to {baud} baud: {reason} (choose a rate the USB-UART "
            "adapter supports, or lower the baud in the fixture file)"
        )


class EfuseRefused(FlashError):
    """espefuse refused a burn (RS block already written, write-protected field...)."""

    def __init__(self, operation: str, message: str) -> None:
        self.operation, self.message = operation, message
        super().__init__(f"eFuse {operation} refused: {message}")
