-- secmail schema, version 3: attempts at processing a message (issue 7).
-- A row is written before a message is processed and removed in the same
-- transaction that commits its effects, so a crash or an abort while it is in
-- hand (which no error handler sees) still counts. After `limits.max_attempts`
-- the message is kept raw on a case flagged "processing failed".
CREATE TABLE attempts (
    raw_hash    TEXT PRIMARY KEY,   -- sha256 of the raw bytes, hex
    count       INTEGER NOT NULL,
    last_error  TEXT,
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL
);
