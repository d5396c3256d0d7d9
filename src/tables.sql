-- secmail schema, version 1. Later versions append to the migration ladder in
-- store.rs; this file is never edited in place once released.

-- One row per case; id is the n of "<prefix>-<n>".
CREATE TABLE cases (
    id                     INTEGER PRIMARY KEY,
    state                  TEXT NOT NULL,
    severity               TEXT,
    handler                TEXT,
    reporter               TEXT NOT NULL,
    subject                TEXT NOT NULL,
    opened_at              TEXT NOT NULL,
    acknowledged_at        TEXT,
    first_response_at      TEXT,
    last_team_response_at  TEXT,
    encrypted              INTEGER NOT NULL DEFAULT 0,
    embargo_until          TEXT,
    cve                    TEXT,
    duplicate_of           INTEGER
);

-- Every message in and out, raw bytes as received / as sent (ciphertext stays
-- ciphertext). dedupe_key makes a second fetch of the same message a no-op.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    case_id      INTEGER REFERENCES cases(id),
    direction    TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    message_id   TEXT NOT NULL,
    dedupe_key   TEXT NOT NULL,
    from_addr    TEXT,
    date         TEXT,
    subject      TEXT,
    encrypted    INTEGER NOT NULL DEFAULT 0,
    signature    TEXT NOT NULL DEFAULT 'none',
    flags        TEXT NOT NULL DEFAULT '',
    raw          BLOB NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (direction, dedupe_key)
);
CREATE INDEX messages_message_id ON messages(message_id);
CREATE INDEX messages_case ON messages(case_id);

-- The timeline of a case.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    case_id  INTEGER NOT NULL REFERENCES cases(id),
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    actor    TEXT,
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_case ON events(case_id);

-- Promises with a due time (SPEC §7). State is derived: met if met_at, lapsed if
-- past due, pending otherwise.
CREATE TABLE deadlines (
    id            INTEGER PRIMARY KEY,
    case_id       INTEGER NOT NULL REFERENCES cases(id),
    kind          TEXT NOT NULL CHECK (kind IN ('ack', 'first-response', 'update')),
    due_at        TEXT NOT NULL,
    met_at        TEXT,
    reminded_at   TEXT,
    escalated_at  TEXT,
    UNIQUE (case_id, kind, due_at)
);
CREATE INDEX deadlines_due ON deadlines(due_at) WHERE met_at IS NULL;

CREATE TABLE escalations (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases(id),
    kind        TEXT NOT NULL,
    recipients  TEXT NOT NULL,
    at          TEXT NOT NULL
);

-- The durable outbox (SPEC §3): a row is written in the same transaction as the
-- decision that causes it; `decision` is unique so a decision queues one mail.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    case_id          INTEGER REFERENCES cases(id),
    decision         TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    envelope_from    TEXT NOT NULL,
    recipients       TEXT NOT NULL,
    raw              BLOB NOT NULL,
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    sent_at          TEXT,
    failed_at        TEXT,
    last_error       TEXT
);
CREATE INDEX outbox_pending ON outbox(next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- Automatic replies sent, per recipient, for rate limiting (RFC 3834 §2).
CREATE TABLE auto_replies (
    recipient  TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX auto_replies_recipient ON auto_replies(recipient, at);

-- Per-folder IMAP state: a UIDVALIDITY change means a clean rescan.
CREATE TABLE imap_sync (
    folder       TEXT PRIMARY KEY,
    uidvalidity  INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL
);
