-- ate line records store: what production may run, and sign-in lockout.
-- An approval names a content digest (ate/station/approvals.py says what it covers) that an
-- engineer approved for production; stations in production mode run nothing else. Revoking
-- keeps the row (who approved it stays known). Portable SQL for SQLite and PostgreSQL.

CREATE TABLE approvals (
    kind         TEXT NOT NULL CHECK (kind IN ('sequence', 'profile')),
    digest       TEXT NOT NULL,             -- 64 hex digits
    name         TEXT NOT NULL,             -- the sequence or profile name and version
    file         TEXT NOT NULL,             -- the file's name when it was approved
    approved_by  TEXT NOT NULL,
    approved_at  TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    revoked_by   TEXT,
    revoked_at   TEXT,
    PRIMARY KEY (kind, digest)
);

-- Wrong PINs in a row, and until when the user is locked out after too many (the line
-- database keeps it, so a guesser gains nothing by walking to another station).
ALTER TABLE operators_auth ADD COLUMN failed_signins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operators_auth ADD COLUMN locked_until TEXT;
