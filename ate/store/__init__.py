"""The line's records store: manufacturing records and the provisioning ledger in SQLite
(a file, the default) or PostgreSQL (several stations share one database).

    store = open_store("sqlite:///var/lib/ate/line.db")   # or postgresql://user@host/db
    store.ingest(record)                                  # idempotent on record_id

Imports only the public API; the backends load when a URL needs them.
"""

from ate.store.api import (
    ALL_PROV_STATES,
    AUDIT_KINDS,
    GENESIS_HASH,
    PROV_STATES,
    AuditEntry,
    BadRecord,
    CertificateRow,
    InvariantViolation,
    IssuancePolicy,
    IssuanceRefused,
    MeasurementDetail,
    MeasurementSeries,
    MoveRefused,
    ProvisioningEvent,
    ProvUnit,
    ReportInput,
    RevokedCertificate,
    RunDetail,
    RunRow,
    SchemaTooNew,
    StepDetail,
    Store,
    StoreError,
    StoreUnavailable,
    UnitHistory,
    UnitMove,
    normalise_mac,
    open_store,
    redact_url,
)
from ate.store.audit import verify_chain

__all__ = [
    "ALL_PROV_STATES",
    "AUDIT_KINDS",
    "GENESIS_HASH",
    "PROV_STATES",
    "AuditEntry",
    "BadRecord",
    "CertificateRow",
    "InvariantViolation",
    "IssuancePolicy",
    "IssuanceRefused",
    "MeasurementDetail",
    "MeasurementSeries",
    "MoveRefused",
    "ProvUnit",
    "ProvisioningEvent",
    "ReportInput",
    "RevokedCertificate",
    "RunDetail",
    "RunRow",
    "SchemaTooNew",
    "StepDetail",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnitHistory",
    "UnitMove",
    "normalise_mac",
    "open_store",
    "redact_url",
    "verify_chain",
]
