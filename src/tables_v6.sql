-- secmail schema, version 6: embargo and disclosure (SPEC §6, §7b). What the
-- team recorded for the advisory, and when the lift happened (each lift once).
ALTER TABLE cases ADD COLUMN affected TEXT;
ALTER TABLE cases ADD COLUMN fixed_in TEXT;
ALTER TABLE cases ADD COLUMN advisory TEXT;
-- JSON array of the pre-notification lists chosen (`#predisclose`).
ALTER TABLE cases ADD COLUMN predisclose TEXT;
ALTER TABLE cases ADD COLUMN disclosed_at TEXT;
