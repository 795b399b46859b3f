-- Each audit entry carries the Ed25519 signature of its hash by the station's key; the
-- stations' public keys are registered here (the first registration of a station wins:
-- a later different key is refused by the store, never silently replaced).
ALTER TABLE audit_log ADD COLUMN signature TEXT;
CREATE TABLE audit_keys (
    station       TEXT PRIMARY KEY,
    public_key    TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
