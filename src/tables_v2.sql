-- secmail schema, version 2: the spam quarantine (SPEC §5.4) and a small
-- key/value table for daemon bookkeeping (last digest time).

-- One row per held message; the message itself stays in `messages` (raw).
-- `id` is the QID that `secmail release` and `#release` take.
CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY,
    message_pk     INTEGER NOT NULL UNIQUE REFERENCES messages(id),
    score          REAL NOT NULL,
    rules          TEXT NOT NULL,
    held_at        TEXT NOT NULL,
    released_at    TEXT,
    released_case  INTEGER REFERENCES cases(id),
    released_by    TEXT
);

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
