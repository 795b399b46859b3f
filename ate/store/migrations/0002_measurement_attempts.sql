-- Every attempt of a retried step keeps its measurements, marked by attempt (0 is the
-- first); `ord` is a measurement's place within its attempt, so a unit's history lists
-- readings in the order the sequence made them. A non-finite reading is null in value
-- with its raw text in text. Rebuilt rather than altered: the primary key changes, and
-- this form runs on SQLite and PostgreSQL alike.
CREATE TABLE measurements_v2 (
    run_id      TEXT NOT NULL,
    step_idx    INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    ord         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    value       DOUBLE PRECISION,
    text        TEXT,
    unit        TEXT NOT NULL,
    low         DOUBLE PRECISION,
    high        DOUBLE PRECISION,
    expect      DOUBLE PRECISION,
    verdict     TEXT NOT NULL,
    PRIMARY KEY (run_id, step_idx, attempt, name),
    FOREIGN KEY (run_id, step_idx) REFERENCES steps (run_id, idx)
);
INSERT INTO measurements_v2 (run_id, step_idx, attempt, ord, name, value, text, unit, low,
    high, expect, verdict)
    SELECT run_id, step_idx, 0, 0, name, value, text, unit, low, high, expect, verdict
    FROM measurements;
DROP TABLE measurements;
ALTER TABLE measurements_v2 RENAME TO measurements;
