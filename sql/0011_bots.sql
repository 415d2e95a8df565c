-- Bots and incoming webhooks (issue 13). Both act for their owner in one conversation; both are
-- found by the SHA-256 of a random secret (the secret itself is never stored), like user tokens,
-- but in tables of their own: the tokens table is the user's devices.
CREATE TABLE bots (
  id               text PRIMARY KEY,
  hash             bytea NOT NULL UNIQUE,       -- sha256 of the bot token
  owner_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  name             text NOT NULL,
  scope            text NOT NULL CHECK (scope IN ('send', 'read', 'read,send')),
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bots_owner ON bots(owner_id);

CREATE TABLE webhooks (
  id               text PRIMARY KEY,
  hash             bytea NOT NULL UNIQUE,       -- sha256 of the secret in the webhook's URL
  owner_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  name             text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner ON webhooks(owner_id);

-- The bot or webhook a message was posted through (its name at the time); NULL for a person's own.
-- Nullable: nodes of the previous release insert messages without it during a rolling deploy.
ALTER TABLE messages ADD COLUMN bot text;
