-- secmail schema, version 4: the team speaks by signature (SPEC §5.2, §6).

-- Every signature a team mail was applied under: the same signature again is
-- a replay and is refused. `signature_id` is the SHA-256 of the signature
-- packet (the same however often the mail is re-sent or re-encrypted).
CREATE TABLE team_signatures (
    signature_id  TEXT PRIMARY KEY,
    case_id       INTEGER REFERENCES cases(id),
    member        TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    signed_at     TEXT NOT NULL,
    applied_at    TEXT NOT NULL,
    message_id    TEXT NOT NULL
);

-- Who signed a stored message, by which key, and where that key came from
-- ("configured key of alice@...", "attached to the message", ...).
ALTER TABLE messages ADD COLUMN signer_fpr TEXT;
ALTER TABLE messages ADD COLUMN signer_source TEXT;

-- The reporter's key, pinned on the case the first time one is known: every
-- later mail to the reporter is encrypted to it; a different key later is
-- flagged for the team, never silently switched.
ALTER TABLE cases ADD COLUMN reporter_key_fpr TEXT;
ALTER TABLE cases ADD COLUMN reporter_key BLOB;
