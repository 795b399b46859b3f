-- ate line records store: the unit lifecycle after the factory (ate/model/prov_state.py owns
-- the states and their moves; tests/store/test_lifecycle.py checks this list equals it).
-- PostgreSQL alters the CHECK in place; SQLite rebuilds the table (its .sqlite.sql twin).
ALTER TABLE units DROP CONSTRAINT IF EXISTS units_prov_state_check;
ALTER TABLE units ADD CONSTRAINT units_prov_state_check CHECK (prov_state IN
    ('new', 'tested', 'certified', 'proven', 'serial', 'written', 'locking', 'locked',
     'shipped', 'rma', 'scrapped', 'revoked'));

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
