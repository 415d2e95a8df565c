-- Issue 13 B: display names, devices, account deletion, blocks and mutes. Every column is added
-- nullable or with a default, so nodes of the previous release keep running beside this one.

-- What others see beside my name ('' when unset).
ALTER TABLE users ADD COLUMN display_name text NOT NULL DEFAULT '';
-- A deleted account keeps its row (its name stays reserved, its messages keep a sender) and is
-- marked here; deleted_messages says what became of its messages: 'keep' or 'remove' (tombstones).
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
ALTER TABLE users ADD COLUMN deleted_messages text CHECK (deleted_messages IN ('keep', 'remove'));

-- Devices: a token is a device. tokens.created_at stays what it was (the time of the last refresh,
-- which moves the expiry); issued_at is when the device signed in. last_used_at and address are
-- written at most once a minute per token, not on every request. Tokens of the previous release
-- get an id from the sequence and the defaults below (issued_at: the time of this migration; they
-- were never told apart before), and so do tokens such a node issues during a rolling deploy.
ALTER TABLE tokens ADD COLUMN id bigserial;
ALTER TABLE tokens ADD COLUMN device text NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN issued_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE tokens ADD COLUMN last_used_at timestamptz;
ALTER TABLE tokens ADD COLUMN address text;
CREATE UNIQUE INDEX tokens_id ON tokens(id);

-- blocker blocks blocked: no direct conversation from blocked, no adding blocker to groups, no
-- presence or last seen of blocker shown to blocked.
CREATE TABLE blocks (
  blocker     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  blocked     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (blocker, blocked)
);
CREATE INDEX blocks_blocked ON blocks(blocked);

-- A member who muted a conversation: it stays out of their unread_total.
ALTER TABLE members ADD COLUMN muted boolean NOT NULL DEFAULT false;
