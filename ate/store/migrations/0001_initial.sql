-- ate line records store, schema version 1: portable SQL for SQLite and PostgreSQL.
-- Times are ISO 8601 UTC text (sortable). One statement per ';'. No secrets, no keys.

CREATE TABLE stations (
    station     TEXT PRIMARY KEY,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);

CREATE TABLE fixtures (
    fixture     TEXT PRIMARY KEY,
    station     TEXT NOT NULL,              -- the station that used it last
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);

CREATE TABLE operators (
    operator    TEXT PRIMARY KEY,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);

CREATE TABLE lots (
    lot         TEXT PRIMARY KEY,
    product     TEXT,
    created_at  TEXT NOT NULL
);

-- One row per physical unit, keyed by its factory MAC (aa:bb:cc:dd:ee:ff).
-- prov_state only moves forward:
-- new < tested < certified < proven < serial < written < locking < locked.
CREATE TABLE units (
    chip_id     TEXT PRIMARY KEY,
    serial      TEXT UNIQUE,
    chip        TEXT,
    product     TEXT,
    lot         TEXT,
    prov_state  TEXT NOT NULL DEFAULT 'new' CHECK (prov_state IN
        ('new', 'tested', 'certified', 'proven', 'serial', 'written', 'locking', 'locked')),
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    runs        INTEGER NOT NULL DEFAULT 0
);

-- One row per unit record (per unit per panel); run_id = record_id, the idempotency key.
-- attempt: 1 for the unit's first run, 2 for its first retest, ... (every run of the unit
-- counts, whatever its verdict); 0 when the slot had no unit (EMPTY).
CREATE TABLE test_runs (
    run_id                TEXT PRIMARY KEY,
    chip_id               TEXT REFERENCES units (chip_id),
    panel_id              TEXT NOT NULL,
    station               TEXT NOT NULL,
    fixture               TEXT NOT NULL,
    slot                  INTEGER NOT NULL,
    operator              TEXT NOT NULL,
    lot                   TEXT,
    sequence              TEXT NOT NULL,
    sequence_version      TEXT NOT NULL,
    sequence_sha256       TEXT NOT NULL,
    test_firmware_sha256  TEXT,
    started_at            TEXT NOT NULL,
    duration_s            DOUBLE PRECISION NOT NULL,
    verdict               TEXT NOT NULL CHECK (verdict IN
        ('PASS', 'FAIL', 'ERROR', 'ABORTED', 'EMPTY')),
    reason                TEXT NOT NULL,
    attempt               INTEGER NOT NULL,
    failing_step          TEXT,
    record                TEXT NOT NULL       -- the whole unit record JSON
);
CREATE INDEX test_runs_by_time ON test_runs (started_at, run_id);
CREATE INDEX test_runs_by_unit ON test_runs (chip_id, started_at, run_id);

CREATE TABLE steps (
    run_id      TEXT NOT NULL REFERENCES test_runs (run_id),
    idx         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    retries     INTEGER NOT NULL,
    started_s   DOUBLE PRECISION NOT NULL,
    duration_s  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, idx)
);

-- A numeric reading goes to value, anything else (a string, NaN) to text.
CREATE TABLE measurements (
    run_id      TEXT NOT NULL,
    step_idx    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    value       DOUBLE PRECISION,
    text        TEXT,
    unit        TEXT NOT NULL,
    low         DOUBLE PRECISION,
    high        DOUBLE PRECISION,
    expect      DOUBLE PRECISION,
    verdict     TEXT NOT NULL,
    PRIMARY KEY (run_id, step_idx, name),
    FOREIGN KEY (run_id, step_idx) REFERENCES steps (run_id, idx)
);

-- The intent and outcome of every provisioning act, as the unit record carries them.
CREATE TABLE provisioning_events (
    run_id      TEXT NOT NULL REFERENCES test_runs (run_id),
    seq         INTEGER NOT NULL,
    chip_id     TEXT NOT NULL,
    act         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL,            -- JSON, sorted keys
    at          TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX provisioning_events_by_unit ON provisioning_events (chip_id, at);

-- Issued device certificates: a fingerprint, a unit and a serial appear once. Never keys.
CREATE TABLE certificates (
    fingerprint TEXT PRIMARY KEY,
    chip_id     TEXT NOT NULL UNIQUE REFERENCES units (chip_id),
    serial      TEXT NOT NULL UNIQUE,
    cert_serial TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    station     TEXT NOT NULL,
    operator    TEXT NOT NULL,
    issued_at   TEXT NOT NULL
);

-- Append-only, hash-chained per station (ate/store/audit.py).
CREATE TABLE audit_log (
    station     TEXT NOT NULL,
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,            -- canonical JSON, sorted keys
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (station, seq)
);
