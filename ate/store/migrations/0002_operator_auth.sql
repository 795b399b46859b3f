-- ate line records store, schema version 2: who may sign in at the stations, and as what.
-- Portable SQL for SQLite and PostgreSQL. Only argon2id hashes are kept, never a PIN.

CREATE TABLE operators_auth (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('operator', 'technician', 'engineer', 'admin')),
    pin_hash    TEXT NOT NULL,              -- argon2id, PHC string ($argon2id$v=19$...)
    created_at  TEXT NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
);
