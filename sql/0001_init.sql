-- Parley's first schema: accounts, conversations, messages and the per-user event stream.
-- Runs unchanged on PostgreSQL and on the embedded PGlite.

CREATE TABLE users (
  id          bigserial PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  pass_hash   text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- Last sequence number handed out in this user's event stream; bumped under the row lock so
  -- that per-user sequence numbers commit in order.
  stream_seq  bigint NOT NULL DEFAULT 0,
  last_seen   timestamptz
);

-- Highest stream position acknowledged by any of the user's devices. A table of its own so that
-- acknowledging locks a different row from the one appending to the stream (no lock cycles:
-- the lock order everywhere is acks → conversations → members → users, users by id).
CREATE TABLE acks (
  user_id    bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  acked_seq  bigint NOT NULL DEFAULT 0
);

CREATE TABLE tokens (
  hash        bytea PRIMARY KEY,          -- sha256 of the bearer token; the token itself is never stored
  user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE conversations (
  id           text PRIMARY KEY,
  kind         text NOT NULL CHECK (kind IN ('direct', 'group')),
  title        text,
  -- For direct conversations: "<lower user id>:<higher user id>", so there is one per pair.
  direct_key   text UNIQUE,
  wrapped_key  bytea NOT NULL,            -- the conversation's data key, sealed by the master key
  last_seq     bigint NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  user_id          bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  joined_at        timestamptz NOT NULL DEFAULT now(),
  delivered_seq    bigint NOT NULL DEFAULT 0,   -- messages up to here reached a device of this member
  read_seq         bigint NOT NULL DEFAULT 0,   -- the member has read up to here
  delivered_at     timestamptz,
  read_at          timestamptz,
  role             text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
  PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members(user_id);

CREATE TABLE messages (
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  seq              bigint NOT NULL,
  id               text NOT NULL UNIQUE,
  sender_id        bigint NOT NULL REFERENCES users(id),
  sent_at          timestamptz NOT NULL DEFAULT now(),
  body             bytea NOT NULL,              -- sealed with the conversation key, aad = conversation and id
  client_id        text,
  attachment       jsonb,
  PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages(conversation_id, sender_id, client_id) WHERE client_id IS NOT NULL;

-- The per-user event stream (the inbox). Message entries point at the message row (no plaintext
-- here); other entries carry their JSON payload.
CREATE TABLE events (
  user_id          bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  seq              bigint NOT NULL,
  type             text NOT NULL,
  conversation_id  text,
  msg_seq          bigint,
  sender_id        bigint,
  payload          jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, seq)
);

CREATE TABLE attachments (
  id               text PRIMARY KEY,
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  uploader_id      bigint NOT NULL REFERENCES users(id),
  name             text NOT NULL,
  type             text NOT NULL,
  size             bigint NOT NULL,
  width            integer,
  height           integer,
  blob_key         text NOT NULL,
  thumbnails       jsonb,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_conversation ON attachments(conversation_id);

CREATE TABLE archives (
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  from_seq         bigint NOT NULL,
  to_seq           bigint NOT NULL,
  blob_key         text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, from_seq)
);
