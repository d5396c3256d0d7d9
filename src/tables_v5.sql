-- secmail schema, version 5: the timer's jobs (SPEC §7): reminders before a
-- deadline, escalations when it lapses (and again every re_escalate_every),
-- closing a case whose reporter stays silent. One row per job, keyed by its
-- due time; `decision` makes it idempotent (a job is done once, also across
-- restarts and kills: its mail is queued in the transaction that marks it done).
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    due_at       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    case_id      INTEGER NOT NULL REFERENCES cases(id),
    deadline_id  INTEGER REFERENCES deadlines(id),
    decision     TEXT NOT NULL UNIQUE,
    done_at      TEXT,
    outcome      TEXT
);
CREATE INDEX jobs_due ON jobs(due_at) WHERE done_at IS NULL;

-- Deadlines already open when this version arrives escalate like new ones.
INSERT OR IGNORE INTO jobs (due_at, kind, case_id, deadline_id, decision)
    SELECT due_at, 'escalate', case_id, id, 'escalate:' || id || ':1' FROM deadlines WHERE met_at IS NULL;
