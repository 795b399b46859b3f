-- ate line records store, schema version 2: who may sign in at the stations, and as what.
-- Portable SQL for SQLite and PostgreSQL. Only argon2id hashes are kept, never a PIN;
-- a badge only as a digest (a badge is something held, read by any reader, not a secret).

CREATE TABLE operators_auth (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('operator', 'technician', 'engineer', 'admin')),
    pin_hash    TEXT NOT NULL,              -- argon2id, PHC string ($argon2id$v=19$...)
    badge_key   TEXT UNIQUE,                -- SHA-256 of the badge's id, to find its owner
    created_at  TEXT NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
);
