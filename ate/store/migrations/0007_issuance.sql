-- ate line records store: the line store is the one owner of a unit's identity. The
-- provisioning flow records the certificate itself and the device's public key with its
-- identifiers (a station keeps no copy), and claims each issuance before the CA signs:
-- one row per unit, naming the station, lot and panel that may have it signed and the
-- verdict of the unit's tests in that panel. Portable SQL for SQLite and PostgreSQL.

ALTER TABLE certificates ADD COLUMN pem TEXT NOT NULL DEFAULT '';
ALTER TABLE certificates ADD COLUMN public_key TEXT NOT NULL DEFAULT '';

CREATE TABLE issuances (
    chip_id     TEXT PRIMARY KEY REFERENCES units (chip_id),
    station     TEXT NOT NULL,              -- the one station that may have it signed
    lot         TEXT NOT NULL,
    panel_id    TEXT NOT NULL,              -- the panel whose tests it passed
    tested      TEXT NOT NULL,              -- the verdict of those tests (PASS to be signed)
    claimed_at  TEXT NOT NULL,
    signed_at   TEXT                        -- when the CA was let sign; NULL: not yet
);
CREATE INDEX issuances_by_station ON issuances (station, signed_at);
CREATE INDEX issuances_by_lot ON issuances (lot, signed_at);
