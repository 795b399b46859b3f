-- ate line records store: the unit lifecycle after the factory (ate/model/prov_state.py owns
-- the states and their moves; tests/store/test_lifecycle.py checks this list equals it).
-- SQLite cannot alter a CHECK: the table is rebuilt (its documented 12 steps; the store
-- turns foreign keys off around migrations), columns and rows unchanged.
CREATE TABLE units_v6 (
    chip_id     TEXT PRIMARY KEY,
    serial      TEXT UNIQUE,
    chip        TEXT,
    product     TEXT,
    lot         TEXT,
    prov_state  TEXT NOT NULL DEFAULT 'new' CHECK (prov_state IN
        ('new', 'tested', 'certified', 'proven', 'serial', 'written', 'locking', 'locked',
         'shipped', 'rma', 'scrapped', 'revoked')),
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    runs        INTEGER NOT NULL DEFAULT 0
);
INSERT INTO units_v6 (chip_id, serial, chip, product, lot, prov_state, first_seen, last_seen,
    runs)
    SELECT chip_id, serial, chip, product, lot, prov_state, first_seen, last_seen, runs
    FROM units;
DROP TABLE units;
ALTER TABLE units_v6 RENAME TO units;

-- A certificate the line no longer trusts: its unit was revoked or scrapped. One row per
-- certificate; `ate unit revoked` exports them for the cloud (and signs a CRL).
CREATE TABLE revocations (
    fingerprint TEXT PRIMARY KEY REFERENCES certificates (fingerprint),
    chip_id     TEXT NOT NULL,
    serial      TEXT NOT NULL,
    cert_serial TEXT NOT NULL,
    state       TEXT NOT NULL,              -- revoked | scrapped: why the line stopped trusting it
    reason      TEXT NOT NULL,
    by_user     TEXT NOT NULL,
    station     TEXT NOT NULL,
    revoked_at  TEXT NOT NULL
);
