"""The provisioning profile (YAML): what a unit that passed becomes, per product and
environment. Validation only; ate.provision turns a profile into actions.

May import ate.config.common, ate.chips (what each chip takes) and pydantic only.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from ate import chips
from ate.config.common import Bool, FieldError, Int, Strict

Environment = Literal["dev", "test", "production"]
HexInt = Annotated[Int, Field(ge=0)]
SERIAL_CHARS = 16  # bytes 2-17 of BLOCK_USR_DATA (firmware/test_fw/PROVISIONING.md)

# Where a secret comes from. Never inline: a profile is reviewed, diffed and committed.
_SECRET_REF = re.compile(r"(env:[A-Za-z_][A-Za-z0-9_]*|file:\S.*)")


def _secret_ref(value: Any) -> Any:
    """Check a secret reference without ever putting the value into the error (pydantic's
    own messages would quote it): whatever is wrong, it may be the secret itself."""
    if value is None or (isinstance(value, str) and _SECRET_REF.fullmatch(value)):
        return value
    raise ValueError(
        "an inline secret is not allowed (value not shown); write env:VARIABLE or "
        "file:PATH (relative to the profile)"
    )


_SECRET_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "pattern": f"^{_SECRET_REF.pattern}$",
        "description": "env:VARIABLE or file:PATH (relative to the profile); never the "
        "secret itself",
    }
)
SecretRef = Annotated[str, BeforeValidator(_secret_ref), _SECRET_SCHEMA]
OptionalSecretRef = Annotated[str | None, BeforeValidator(_secret_ref)]


class Product(Strict):
    name: str = Field(min_length=1, pattern=r"^[^\s,=*]+$", description="no spaces; in the CN")
    id: Int = Field(ge=0, le=0xFFFFFFFF, description="product id burned with the serial")
    chip: Literal["esp32s3", "esp32c3"]


class SerialScheme(Strict):
    source: Literal["mac", "optional_unique_id"] = Field(
        "mac", description="the chip id the serial is derived from"
    )
    prefix: str = Field(pattern=r"^[A-Z0-9]{1,4}$", description="1-4 of A-Z 0-9")
    digits: Int = Field(10, ge=6, le=10, description="serial characters before the check digit")
    secret: SecretRef = Field(description="the factory secret that keys the HMAC")

    @model_validator(mode="after")
    def _fits(self) -> SerialScheme:
        # PREFIX-XXXXX-XXXXX-C: groups of five, a check character; BLOCK_USR_DATA holds 16.
        groups = -(-self.digits // 5)
        length = len(self.prefix) + 1 + self.digits + (groups - 1) + 2
        if length > SERIAL_CHARS:
            raise FieldError(
                f"prefix {self.prefix!r} with {self.digits} digits makes a {length}-character "
                f"serial; at most {SERIAL_CHARS} fit in the eFuse (shorten prefix or digits)",
                ("digits",),
            )
        return self


class FileCaSpec(Strict):
    cert: str = Field(description="the issuing CA's certificate (PEM)")
    key: str = Field(description="its private key (PEM); development only")
    password: OptionalSecretRef = None


class Pkcs11CaSpec(Strict):
    module: str = Field(description="PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so")
    token: str = Field(description="token label")
    key: str = Field(description="label of the CA's private key in the token")
    cert: str = Field(description="the issuing CA's certificate (PEM)")
    pin: SecretRef


class CaSpec(Strict):
    backend: Literal["file", "pkcs11"]
    chain: tuple[str, ...] = Field(
        (), description="CA certificates between the issuing CA and the root (PEM files)"
    )
    root: str = Field(description="the trust anchor (PEM)")
    root_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="pin of the root (required in production)"
    )
    file: FileCaSpec | None = None
    pkcs11: Pkcs11CaSpec | None = None

    @model_validator(mode="after")
    def _backend_section(self) -> CaSpec:
        if self.backend == "file" and self.file is None:
            raise ValueError("backend 'file' needs a 'file:' section (cert, key)")
        if self.backend == "pkcs11" and self.pkcs11 is None:
            raise ValueError("backend 'pkcs11' needs a 'pkcs11:' section (module, token, key)")
        return self


class CertificateSpec(Strict):
    common_name: str = Field(
        "{product}-{serial}", description="format string: {product} {serial} {mac}"
    )
    organization: str | None = None
    organizational_unit: str | None = None
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    validity_days: Int = Field(7300, ge=1, le=36500)
    key_type: Literal["ec-p256"] = "ec-p256"

    @field_validator("common_name")
    @classmethod
    def _fields(cls, value: str) -> str:
        unknown = set(re.findall(r"{(\w*)}", value)) - {"product", "serial", "mac"}
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(unknown))}; allowed: product, serial, mac"
            )
        return value


class PartitionSpec(Strict):
    offset: HexInt
    size: HexInt

    @model_validator(mode="after")
    def _aligned(self) -> PartitionSpec:
        if self.offset % 0x1000 or self.size % 0x1000 or self.size == 0:
            raise ValueError("offset and size must be non-zero multiples of 0x1000 (4 KiB)")
        return self


class PartitionsSpec(Strict):
    esp_secure_cert: PartitionSpec = PartitionSpec(offset=0xD000, size=0x2000)
    dev_key: PartitionSpec = PartitionSpec(offset=0xF000, size=0x1000)
    fctry: PartitionSpec = PartitionSpec(offset=0x310000, size=0x6000)
    nvs_namespace: str = Field("ate", pattern=r"^[A-Za-z0-9_]{1,15}$")


class CloudSpec(Strict):
    output: Literal["none", "jitr", "jitp", "bulk"] = "none"
    endpoint: str = Field("", pattern=r"^[^\s,]*$", description="written into the fctry NVS")
    thing_name: str = Field("{serial}", description="format string: {product} {serial} {mac}")
    registration: Literal["none", "aws_iot"] = Field(
        "none",
        description="aws_iot: the station registers each locked unit with AWS IoT (thing, "
        "certificate, policy), queued in its state folder and retried while the cloud is away",
    )
    region: str = Field("", pattern=r"^([a-z]{2}(-[a-z]+)+-\d+)?$", description="e.g. eu-west-1")
    endpoint_url: str = Field(
        "", pattern=r"^(https?://\S+)?$", description="the AWS IoT API endpoint (tests: moto)"
    )
    policy: str = Field(
        "",
        pattern=r"^[\w+=,.@-]{0,128}$",
        description="the IoT policy attached to each certificate",
    )


class IssuanceSpec(Strict):
    """How many certificates the CA may sign; the line store checks before every
    signature (ate.store: authorize_issue) and audits a refusal."""

    lot_quota: Int = Field(100_000, ge=1, description="certificates signed per lot, at most")
    per_station_per_hour: Int = Field(
        3_600, ge=1, description="certificates one station may have signed in any hour"
    )


class FlashEncryptionSpec(Strict):
    key: Literal["off", "host", "device"] = Field(
        "host",
        description=(
            "host: generated by the station in memory, burned read-protected, used to encrypt "
            "the production images, then forgotten (risk: it exists in station memory for "
            "seconds). device: generated by the production bootloader on first boot (risk: "
            "the unit leaves the line with encryption not yet on until its first boot)"
        ),
    )
    block: str = Field("BLOCK_KEY0", pattern=r"^BLOCK_KEY[0-4]$")
    xts: Literal[128, 256] = Field(
        128,
        description=(
            "XTS-AES key size with key: host. 256 (ESP32-S3 only): a 512-bit key in `block` "
            "and the block after it (BLOCK_KEY0..3)"
        ),
    )


class SecureBootSpec(Strict):
    keys: tuple[str, ...] = Field(
        (), max_length=3, description="RSA-3072 public keys (PEM); none: no secure boot"
    )
    blocks: tuple[str, ...] = ("BLOCK_KEY1", "BLOCK_KEY2", "BLOCK_KEY3")
    aggressive_revoke: Bool = False
    revoke_unused: Bool = True


class SecuritySpec(Strict):
    flash_encryption: FlashEncryptionSpec = FlashEncryptionSpec()
    secure_boot: SecureBootSpec = SecureBootSpec()
    disable_jtag: Bool = True
    download: Literal["secure", "disable", "leave"] = Field(
        "secure",
        description="last of all: ENABLE_SECURITY_DOWNLOAD (secure) or DIS_DOWNLOAD_MODE",
    )


class Profile(Strict):
    profile: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="profile name")
    environment: Environment
    product: Product
    serial: SerialScheme
    ca: CaSpec
    certificate: CertificateSpec = CertificateSpec()
    partitions: PartitionsSpec = PartitionsSpec()
    release: str = Field(description="production firmware release manifest (YAML)")
    security: SecuritySpec = SecuritySpec()
    cloud: CloudSpec = CloudSpec()
    issuance: IssuanceSpec = IssuanceSpec()

    @model_validator(mode="after")
    def _cloud_rules(self) -> Profile:
        if self.cloud.registration == "aws_iot":
            for name in ("region", "policy"):
                if not getattr(self.cloud, name):
                    raise FieldError(f"cloud.registration 'aws_iot' needs cloud.{name}", ("cloud",))
        return self

    @model_validator(mode="after")
    def _xts_fits_the_chip(self) -> Profile:
        fe = self.security.flash_encryption
        chip = chips.get(self.product.chip)
        if fe.xts == 256 and 64 not in chip.flash_encryption_key_bytes:
            with_256 = [c.name for c in chips.all_chips() if 64 in c.flash_encryption_key_bytes]
            raise FieldError(
                f"the {chip.name} has no XTS-AES-256 flash encryption: xts must be "
                f"128 (XTS-AES-256 is for the {' and '.join(with_256)})",
                ("security", "flash_encryption", "xts"),
            )
        if fe.xts == 256 and fe.key != "host":
            raise FieldError(
                "xts: 256 is the station's key size: it needs key: host",
                ("security", "flash_encryption", "xts"),
            )
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> Profile:
        if self.environment != "production":
            return self
        if self.ca.backend != "pkcs11":
            raise FieldError(
                "environment 'production' needs ca.backend 'pkcs11': a file-based CA is for "
                "development only",
                ("ca", "backend"),
            )
        if self.ca.root_sha256 is None:
            raise FieldError(
                "environment 'production' needs ca.root_sha256 (pin the root)", ("ca",)
            )
        if self.security.download == "leave":
            raise FieldError(
                "environment 'production' cannot leave the download mode open",
                ("security", "download"),
            )
        if not self.security.secure_boot.keys:
            raise FieldError("environment 'production' needs secure_boot.keys", ("security",))
        if self.security.flash_encryption.key == "off":
            raise FieldError(
                "environment 'production' needs flash encryption",
                ("security", "flash_encryption", "key"),
            )
        return self
