"""eFuse access through espefuse's library API, on an `EspFlasher`'s open connection.

`EfuseSession` reads and burns eFuses in the flasher's worker thread, so its output lands
in that slot's log. Every burn checks state first where that is cheap, lets espefuse do
the burn (it refuses a second write into a Reed-Solomon block, a write-protected field,
a value that would clear bits) and reads back afterwards; espefuse's refusals become
`EfuseRefused` with its own words. Confirmation prompts are always off. Burning
DIS_DOWNLOAD_MODE or ENABLE_SECURITY_DOWNLOAD: the flasher stub keeps answering until the
next reset; the bare ROM acts at once, espefuse re-connects (here without its DTR/RTS
reset) and may `sys.exit(0)`, which becomes a normal result with `link` telling what the
chip still accepts on this connection.

May import espefuse/esptool; the higher provisioning layer builds its plans on this.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import espefuse
import esptool
from esp_pylib.errors import FatalError
from espefuse.efuse import base_fields

from ate.drivers.esp.errors import (
    DownloadModeDisabled,
    EfuseRefused,
    FlashError,
    SecureDownloadMode,
)
from ate.drivers.esp.flasher import EspFlasher

T = TypeVar("T")
Link = Literal["normal", "secure-download", "disabled"]


@dataclass(frozen=True, slots=True)
class EfuseField:
    name: str
    block: int
    value: object  # as `EfuseSession.read` returns it; None when read-protected
    readable: bool
    writeable: bool


@dataclass(frozen=True, slots=True)
class Burn:
    """burn-efuse: fields to values (ints, or bytes for byte fields)."""

    values: dict[str, int | bytes]


@dataclass(frozen=True, slots=True)
class BurnKey:
    """burn-key: a key or digest into a key block with its purpose. By default the block
    is write-protected and, for purposes that need it, read-protected; read_protect False
    keeps a secret key readable, True insists (refused for a purpose that must stay
    readable, such as a Secure Boot digest)."""

    block: str
    key: bytes
    purpose: str
    read_protect: bool | None = None
    write_protect: bool = True


@dataclass(frozen=True, slots=True)
class WriteProtect:
    """write-protect-efuse: set WR_DIS for each field (and so its whole group)."""

    names: tuple[str, ...]


Act = Burn | BurnKey | WriteProtect


def _value(field: Any) -> object:
    """MACs as "aa:bb:..", other byte fields as bytes in burn order, key purposes by
    name, the rest as int/bool."""
    if not field.is_readable():
        return None
    if field.efuse_class == "mac":
        return str(field.get()).split(" ")[0]  # "aa:bb:cc:dd:ee:ff (OK)"
    if str(field.efuse_type).startswith("bytes"):
        # espefuse stores bytes reversed in its bitstring; undo that.
        return bytes(field.get_bitstring().bytes[::-1])
    return field.get()


def _reconnect_without_reset(esp: Any) -> Any:
    """espefuse's reconnect after burning a download-mode fuse, minus its DTR/RTS reset
    ("default-reset"): on a fixture those lines are the fixture controller's, and the ROM
    needs no reset to go on (it is then in Secure Download Mode, or silent)."""
    port, baud = esp._port.port, esp._port.baudrate
    esp._port.close()
    return esptool.detect_chip(port, baud, "no-reset")


class EfuseSession:
    """eFuses of the chip behind `flasher` (connected, not in Secure Download Mode)."""

    def __init__(self, flasher: EspFlasher) -> None:
        self._flasher = flasher
        self._commands: Any = None
        self.link: Link = "normal"
        # True while espefuse's objects hold what the chip last answered to a whole read
        # (espefuse's own first read, a refresh, or the read-back every burn ends with)
        # and nothing has been asked of the chip since: a read then costs no round trip.
        # Only this session's burns change the eFuses of a connected chip.
        self._fresh = False

    # -- reads ------------------------------------------------------------------------

    async def summary(self) -> dict[str, object]:
        """Every field, name -> value (as `read` returns it), freshly read."""
        return await self._call("summary", self._summary)

    async def read(self, name: str) -> object:
        """One field: bytes for byte fields, a name for key purposes, else int/bool;
        None when the field is read-protected."""
        return (await self.field(name)).value

    async def field(self, name: str) -> EfuseField:
        """One field with its protection state."""
        return await self._call("read", self._field, name)

    # -- burns ------------------------------------------------------------------------

    async def burn(self, values: dict[str, int | bytes]) -> dict[str, object]:
        """burn-efuse of several fields in one batch; returns the values read back."""
        if not values:
            return {}
        await self.burn_batch([Burn(dict(values))])
        if self.link != "normal":
            return {}  # the chip stopped answering eFuse reads: nothing to read back
        return await self._call("read", self._values, list(values))

    async def burn_key(
        self,
        block: str,
        key: bytes,
        purpose: str,
        *,
        read_protect: bool | None = None,
        write_protect: bool = True,
    ) -> None:
        """burn-key (see `BurnKey`)."""
        await self.burn_batch([BurnKey(block, bytes(key), purpose, read_protect, write_protect)])

    async def burn_batch(self, acts: list[Act]) -> None:
        """Several burns as one espefuse batch (its CLI's chained commands): every act is
        checked against the chip as read, queued, and burned together in one program
        cycle per block, BLOCK0's lock bits (WR_DIS, RD_DIS) and download-mode fuses
        last; then one read-back, against which every act is checked. A refusal of any
        act burns nothing. The per-burn cost on a chip (a program cycle and a whole
        read-back each) is paid once for the batch."""
        if acts:
            await self._call(_batch_name(acts), self._batch, list(acts))

    async def burn_block_data(self, block: str, data: bytes, offset: int = 0) -> None:
        """burn-block-data, padded to the whole block (espefuse 5.6 refuses a short
        file at offset 0). A block that already holds these bits is left alone."""
        await self._call("burn-block-data", self._burn_block_data, block, bytes(data), offset)

    async def write_protect(self, names: list[str]) -> None:
        """write-protect-efuse: set WR_DIS for each field (and its group) in one burn."""
        if names:
            await self.burn_batch([WriteProtect(tuple(names))])

    # -- worker-thread side -----------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        if self.link == "disabled":
            raise DownloadModeDisabled(f"eFuse {what}")
        if self.link == "secure-download" or self._flasher.info.security.secure_download:
            raise SecureDownloadMode(f"eFuse {what}")
        return await self._flasher.run_in_worker(what, self._guard, what, fn, *args)

    def _guard(self, esp: Any, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            if self._commands is None or self._commands.efuses._esp is not esp:
                # First use, or the flasher connected again since: read the chip afresh.
                self._commands = espefuse.init_commands(esp=esp, do_not_confirm=True)
                self._fresh = True  # espefuse has just read every block
                efuses = self._commands.efuses
                # The CLI's default: lock bits (WR_DIS, RD_DIS) and the download-mode
                # fuses go last in a batch, so a failure leaves the chip recoverable.
                efuses.postpone = True
                efuses.reconnect_chip = _reconnect_without_reset
            return fn(self._commands.efuses, *args)
        except BaseException as e:
            # A refused burn leaves its data queued in espefuse's write buffers, where
            # the next burn would OR it in: start the next call from a fresh read.
            self._commands = None
            self._fresh = False
            if isinstance(e, KeyError):
                raise EfuseRefused(what, f"no eFuse or block named {e.args[0]!r}") from e
            if isinstance(e, FatalError) and not isinstance(e, FlashError):
                raise EfuseRefused(what, " ".join(str(e).split())) from e
            raise

    def _refresh(self, efuses: Any) -> None:
        # Same read-back espefuse does after a burn (base_fields.burn_all).
        if self._fresh:
            return
        efuses.read_coding_scheme()
        efuses.read_blocks()
        efuses.update_efuses()
        self._fresh = True

    def _summary(self, efuses: Any) -> dict[str, object]:
        self._refresh(efuses)
        return {e.name: _value(e) for e in efuses}

    def _field(self, efuses: Any, name: str) -> EfuseField:
        self._refresh(efuses)
        e = efuses[name]
        return EfuseField(e.name, int(e.block), _value(e), e.is_readable(), e.is_writeable())

    def _burning(self, efuses: Any, what: str, burn: Callable[[], None]) -> bool:
        """Run an espefuse burn command; False when the chip stopped talking because of
        what was burned (espefuse calls sys.exit(0) then)."""
        loader = efuses._esp
        self._fresh = False
        try:
            burn()
        except SystemExit as e:
            if e.code not in (0, None):
                raise EfuseRefused(what, f"espefuse stopped with exit code {e.code}") from e
            if efuses._esp is not loader and efuses._esp.secure_download_mode:
                # espefuse reconnected and found the ROM in Secure Download Mode.
                self._flasher.adopt_loader(efuses._esp)
                self.link = "secure-download"
            else:
                self._flasher.mark_download_disabled()
                self.link = "disabled"
            return False
        if efuses._esp is not loader:
            self._flasher.adopt_loader(efuses._esp)  # reconnected but still talking
        else:
            # burn_all ends by reading every block back (or burned nothing at all):
            # what espefuse holds now is what the chip answered.
            self._fresh = True
        return True

    def _burn_block_data(self, efuses: Any, block: str, data: bytes, offset: int) -> None:
        self._refresh(efuses)
        blk = efuses.blocks[efuses.get_index_block_by_name(block)]
        size = int(blk.get_block_len())
        if offset < 0 or offset + len(data) > size:
            raise ValueError(f"{len(data)} bytes at offset {offset} do not fit {block} ({size})")
        full = bytes(offset) + data + bytes(size - offset - len(data))
        ok = self._burning(
            efuses,
            "burn-block-data",
            lambda: self._commands.burn_block_data([blk.name], [io.BytesIO(full)], 0),
        )
        if ok and blk.is_readable():
            got = bytes(blk.get_bitstring().bytes[::-1])
            # Only the bits asked for must be set (a re-run over the same data is fine).
            if any((g & f) != f for g, f in zip(got, full, strict=True)):
                raise EfuseRefused("burn-block-data", f"{blk.name} does not read back the data")

    def _values(self, efuses: Any, names: list[str]) -> dict[str, object]:
        self._refresh(efuses)
        return {efuses[n].name: _value(efuses[n]) for n in names}

    def _batch(self, efuses: Any, acts: list[Act]) -> None:
        self._refresh(efuses)
        # Checked and queued against the chip as read: a refusal leaves nothing burned
        # (and _guard drops the queued writes with espefuse's objects).
        self._commands.use_batch_mode()
        for act in acts:
            if isinstance(act, Burn):
                self._queue_burn(efuses, act)
            elif isinstance(act, BurnKey):
                self._queue_key(efuses, act)
            else:
                self._queue_protect(efuses, act)
        if not self._burning(
            efuses, _batch_name(acts), lambda: self._commands.burn_all(check_batch_mode=True)
        ):
            return
        for act in acts:
            if isinstance(act, Burn):
                self._verify_burn(efuses, act)
            elif isinstance(act, BurnKey):
                self._verify_key(efuses, act)
            else:
                self._verify_protect(efuses, act)

    def _queue_burn(self, efuses: Any, act: Burn) -> None:
        checked: dict[str, int | bytes] = {}
        for name, value in act.values.items():
            field = efuses[name]  # KeyError -> unknown field
            if isinstance(value, bytes | bytearray):
                raw = bytes(value)
                # MAC fields parse "aa:bb:cc:dd:ee:ff"; other byte fields plain hex.
                text = raw.hex(":") if field.efuse_class == "mac" else raw.hex()
            else:
                text = str(int(value))  # bool -> "1": espefuse parses with int(x, 0)
            # espefuse's own argument check (length, bool only 1, non-zero int).
            checked[field.name] = base_fields.CheckArgValue(efuses, field.name)(text)
        self._commands.burn_efuse(checked, force=False)

    def _verify_burn(self, efuses: Any, act: Burn) -> None:
        for name, value in act.values.items():
            field = efuses[name]
            now = _value(field)
            if isinstance(value, bytes | bytearray):
                want: object = bytes(value).hex(":") if field.efuse_class == "mac" else bytes(value)
                ok = now == want
            else:
                # Raw bits: a key purpose reads back as its name, a flag as a bool.
                ok = field.get_bitstring().uint & int(value) == int(value)
            if not ok and field.is_readable():
                raise EfuseRefused("burn-efuse", f"{field.name} reads back {now!r}")

    def _key_block(self, efuses: Any, block: str) -> Any:
        blk = efuses.blocks[efuses.get_index_block_by_name(block)]
        if blk.key_purpose_name is None:
            raise EfuseRefused("burn-key", f"{block} is not a key block")
        return blk

    def _queue_key(self, efuses: Any, act: BurnKey) -> None:
        blk = self._key_block(efuses, act.block)
        purpose_field = efuses[blk.key_purpose_name]
        if act.purpose not in purpose_field.KEY_PURPOSES_NAME:
            raise EfuseRefused(
                "burn-key",
                f"unknown key purpose {act.purpose!r}; one of {purpose_field.KEY_PURPOSES_NAME}",
            )
        needs_rd = bool(purpose_field.need_rd_protect(act.purpose))
        if act.read_protect and not needs_rd:
            raise EfuseRefused(
                "burn-key",
                f"a {act.purpose} key must stay readable; refusing to read-protect {act.block}",
            )
        if not blk.is_writeable():
            raise EfuseRefused("burn-key", f"{blk.name} is write-protected (already burned?)")
        self._commands.burn_key(
            [blk.name],
            [io.BytesIO(act.key)],
            [act.purpose],
            no_write_protect=not act.write_protect,
            no_read_protect=act.read_protect is False,
        )

    def _verify_key(self, efuses: Any, act: BurnKey) -> None:
        blk = self._key_block(efuses, act.block)
        purpose_field = efuses[blk.key_purpose_name]
        if purpose_field.get() != act.purpose:
            raise EfuseRefused(
                "burn-key", f"{blk.key_purpose_name} reads back {purpose_field.get()}"
            )
        key_field = efuses[blk.name]
        needs_rd = bool(purpose_field.need_rd_protect(act.purpose))
        expect_readable = not (needs_rd and act.read_protect is not False)
        if key_field.is_readable() != expect_readable:
            raise EfuseRefused(
                "burn-key",
                f"{blk.name} is {'' if key_field.is_readable() else 'not '}readable after burning",
            )
        if expect_readable and len(act.key) * 8 == key_field.bit_len:
            stored = act.key[::-1] if purpose_field.need_reverse(act.purpose) else act.key
            if _value(key_field) != stored:
                raise EfuseRefused("burn-key", f"{blk.name} does not read back the key burned")

    def _queue_protect(self, efuses: Any, act: WriteProtect) -> None:
        fields = [efuses[n] for n in act.names]
        for f in fields:
            if f.write_disable_bit is None:
                raise EfuseRefused("write-protect-efuse", f"{f.name} cannot be write-protected")
        self._commands.write_protect_efuse([f.name for f in fields])

    def _verify_protect(self, efuses: Any, act: WriteProtect) -> None:
        still = [efuses[n].name for n in act.names if efuses[n].is_writeable()]
        if still:
            raise EfuseRefused("write-protect-efuse", f"still writeable: {', '.join(still)}")


def _batch_name(acts: list[Act]) -> str:
    """What a batch is called in errors and logs: its espefuse commands, in order."""
    names = {Burn: "burn-efuse", BurnKey: "burn-key", WriteProtect: "write-protect-efuse"}
    return " + ".join(dict.fromkeys(names[type(a)] for a in acts))
