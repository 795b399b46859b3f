"""The station file: what one long-running `ate station` process runs. Its fixtures (each
with its own trigger), the sequence, the optional provisioning profile, where its state,
outputs and line database are, and the limits it keeps (clamp debounce, free disk space).

Paths are relative to the station file. May import ate.config only.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, model_validator

from ate.config.common import FieldError, Strict, Timeout
from ate.config.fixture import PortSpec

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_FACTOR = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}


class StationFixture(Strict):
    """One fixture the station runs, and what starts its panels."""

    file: str = Field(description="fixture YAML, relative to the station file")
    trigger: Literal["clamp", "button", "manual"] = Field(
        "clamp",
        description="clamp: a panel starts when the clamp closes (debounced); button: on the "
        "controller's start button (BUTTON notice); manual: when the operator page asks",
    )
    scanner: PortSpec | None = Field(
        None,
        description="a serial barcode scanner for this fixture's unit labels (label_scan): "
        "each scan goes to the first slot without one; baud as the scanner is set (often 9600)",
    )


def is_loopback(host: str) -> bool:
    """An address only this machine reaches (127/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class PageTls(Strict):
    """The page over HTTPS: a certificate (PEM, with its chain) and its private key (PEM,
    readable by the station's user only), relative to the station file."""

    cert: str = Field(description="certificate chain file (PEM)")
    key: str = Field(description="private key file (PEM, mode 0600)")


class StationPage(Strict):
    """The operator's page, served by the station (ate/ui)."""

    host: str = Field(
        "127.0.0.1",
        description="address to serve on; anything but loopback needs signin: true",
    )
    port: int = Field(8080, ge=0, le=65535, description="0: any free port")
    lang: Literal["en", "zh"] = Field("en", description="language of every operator string")
    signin: bool = Field(
        False, description="operators sign in (PIN or badge) and actions check their role"
    )
    label_printer: str | None = Field(
        None, description="tcp://HOST[:PORT] of a ZPL printer, or a folder for label files"
    )
    tls: PageTls | None = Field(
        None,
        description="serve over HTTPS; required beyond loopback, where PINs and session "
        "cookies cross the network",
    )

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


_MQTT_URL = re.compile(
    r"^mqtt://(?:[^@/\s]+@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?/?$"
)
_AMQP_URL = re.compile(
    r"^amqps?://(?:[^@/\s]+@)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?/?$"
)


def _check_url(url: str, pattern: re.Pattern[str], shape: str) -> str:
    m = pattern.match(url)
    if m is None or (m.group(1) is not None and not 0 < int(m.group(1)) < 65536):
        shown = url if len(url) <= 60 else url[:57] + "..."
        # never echo a password the URL may carry
        shown = re.sub(r"//[^@/]*@", "//***@", shown)
        raise ValueError(f"url {shown!r}: write {shape}")
    return url


class StationMes(Strict):
    """The manufacturing execution system's word on a unit before it is tested, and
    what it is told after (ate/mes). `linedb`: the line database's retest policy;
    `cfx`: an MES on an AMQP 1.0 broker speaking IPC-CFX (IPC-2591)."""

    driver: Literal["linedb", "cfx"] = Field(
        "linedb", description="linedb (default): the line database; cfx: IPC-CFX over AMQP 1.0"
    )
    url: str | None = Field(
        None, description="cfx: amqp://USER:PASSWORD@HOST[:PORT] of the broker (RabbitMQ)"
    )
    address: str = Field(
        "/exchange/amq.topic/cfx",
        description="cfx: where CFX messages are published (RabbitMQ: /exchange/NAME/KEY)",
    )
    requests: str = Field(
        "/queue/cfx.mes.requests",
        description="cfx: the MES's request address (ValidateUnitsRequest goes there)",
    )
    handle: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="cfx: this station's CFX handle (default: ate.<station>)",
    )
    target: str | None = Field(None, description="cfx: the MES's CFX handle, when it has one")
    timeout: Timeout = Field(
        5.0, gt=0, le=60.0, description="cfx: no answer to a check-in this long: not tested"
    )

    @model_validator(mode="after")
    def _checks(self) -> StationMes:
        if self.driver == "cfx":
            if self.url is None:
                raise FieldError("mes driver cfx needs url: amqp://USER:PASSWORD@HOST[:PORT]")
            try:
                _check_url(self.url, _AMQP_URL, "amqp://USER:PASSWORD@HOST[:PORT]")
            except ValueError as exc:
                raise FieldError(str(exc), ("url",)) from None
        elif self.url is not None:
            raise FieldError("url is for the cfx driver; linedb uses the station's db", ("url",))
        return self


class StationMqtt(Strict):
    """Station events published to an MQTT broker (ate/station/mqtt_events.py)."""

    url: str = Field(description="mqtt://[USER:PASSWORD@]HOST[:PORT] (default port 1883)")
    prefix: str = Field(
        "ate", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", description="first topic level(s)"
    )
    queue: int = Field(
        1000, ge=1, le=100000, description="events held while the broker is away (oldest dropped)"
    )

    @model_validator(mode="after")
    def _checks(self) -> StationMqtt:
        try:
            _check_url(self.url, _MQTT_URL, "mqtt://[USER:PASSWORD@]HOST[:PORT]")
        except ValueError as exc:
            raise FieldError(str(exc), ("url",)) from None
        return self


class StationMetrics(Strict):
    """A Prometheus /metrics server of its own (the operator's page serves /metrics too)."""

    host: str = Field("127.0.0.1", description="address to serve /metrics on")
    port: int = Field(9464, ge=0, le=65535, description="0: any free port")


class Station(Strict):
    station: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="station name")
    fixtures: tuple[StationFixture, ...] = Field(min_length=1, max_length=16)
    sequence: str = Field(description="sequence YAML, relative to the station file")
    variant: str | None = Field(
        None, description="the product variant the sequence's parameters are resolved for"
    )
    profile: str | None = Field(
        None, description="provisioning profile YAML: units that pass are provisioned"
    )
    db: str | None = Field(
        None,
        pattern=r"^(sqlite|postgresql|postgres)://.*",
        description="line database URL (default: $ATE_DB, else SQLite in the state folder)",
    )
    state: str = Field(
        "ate-state", description="state folder: spool and provisioning journal, default database"
    )
    lot: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description="production lot")
    outputs: str = Field("ate-out", description="folder for records, logs and JUnit")
    operator: str = Field("unknown", description="operator id until one signs in")
    debounce: Timeout = Field(
        0.2,
        ge=0.0,
        le=5.0,
        description="the clamp must read closed this long before a panel starts (0 to 5 s)",
    )
    min_free: int | str = Field(
        "500MB",
        description="refuse to start a panel when the state or outputs folder has less free "
        "space (bytes, or '500MB', '2GiB')",
    )
    max_retests: int | None = Field(None, ge=0, le=100)
    page: StationPage | None = Field(None, description="serve the operator's page")
    label_scan: Literal["off", "optional", "required"] = Field(
        "off",
        description="unit labels scanned per slot before the clamp closes (on the page, by a "
        "keyboard-wedge scanner): optional: a scanned label must match the unit's serial; "
        "required: a unit with no scan is not provisioned (ERROR)",
    )
    production: bool = Field(
        False,
        description="production mode: run only a sequence and profile whose content digest an "
        "engineer approved in the line database (`ate approval add`); checked at start and reload",
    )
    retry_max: Timeout = Field(
        30.0, gt=0, le=600, description="cap of the back-off between reconnects to a controller"
    )
    mes: StationMes = Field(
        default_factory=StationMes, description="the MES interlock (default: line database)"
    )
    mqtt: StationMqtt | None = Field(None, description="publish station events over MQTT")
    metrics: StationMetrics | None = Field(
        None, description="serve Prometheus /metrics on a port of its own"
    )

    @model_validator(mode="after")
    def _checks(self) -> Station:
        files: dict[str, int] = {}
        for i, f in enumerate(self.fixtures):
            if f.file in files:
                raise FieldError(
                    f"fixture file {f.file!r} is listed twice (entries {files[f.file] + 1} and "
                    f"{i + 1}); a fixture has one loop",
                    ("fixtures", i, "file"),
                )
            files[f.file] = i
        page = self.page
        if page is not None and not page.loopback:
            if not page.signin:
                raise FieldError(
                    f"the page on {page.host} is reachable from the network: everyone must "
                    "sign in there (signin: true), or serve it on 127.0.0.1",
                    ("page", "host"),
                )
            if page.tls is None:
                raise FieldError(
                    f"the page on {page.host} is reachable from the network: PINs and session "
                    "cookies need HTTPS there (tls: {cert: FILE, key: FILE})",
                    ("page", "host"),
                )
        scanners = [i for i, f in enumerate(self.fixtures) if f.scanner is not None]
        if self.label_scan != "off" and self.page is None and not scanners:
            raise FieldError(
                "label_scan needs somewhere to scan: the operator's page (page: ...) or a "
                "fixture's scanner",
                ("label_scan",),
            )
        if scanners and self.label_scan == "off":
            raise FieldError(
                "a scanner's scans are label checks: set label_scan: optional or required",
                ("fixtures", scanners[0], "scanner"),
            )
        self.min_free_bytes  # noqa: B018 - parsed now so a typo fails at load
        return self

    @property
    def min_free_bytes(self) -> int:
        if isinstance(self.min_free, int):
            if self.min_free < 0:
                raise FieldError("min_free must be >= 0", ("min_free",))
            return self.min_free
        m = _SIZE.match(self.min_free)
        if m is None:
            raise FieldError(
                f"min_free {self.min_free!r}: write bytes (500000000) or a size like "
                "'500MB', '2GiB' (units B, KB, MB, GB, KiB, MiB, GiB)",
                ("min_free",),
            )
        return int(float(m.group(1)) * _FACTOR[m.group(2)])
