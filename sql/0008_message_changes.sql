-- Issue 13: edits, deletes for everyone, replies and reactions. The messages table and archive
-- chunks are never rewritten for them (archived messages change as well): each change lives in a
-- table of its own, keyed by the message, and is laid over the message when it is rendered.
-- Texts here are sealed with the conversation key like message bodies.
--
-- One row per message that was ever replied-to-from, edited or deleted: what it quotes (id and
-- seq, so an archived original is found), its current text when edited, and when it was edited
-- or deleted for everyone.
CREATE TABLE IF NOT EXISTS message_changes (
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  message_id       text NOT NULL,
  reply_to_id      text,
  reply_to_seq     bigint,
  body             bytea,             -- the current text once edited (null: the original)
  edits            integer NOT NULL DEFAULT 0,
  edited_at        timestamptz,
  deleted_at       timestamptz,
  PRIMARY KEY (conversation_id, message_id)
);
-- The earlier texts of an edited message, oldest first (n), each sealed; replaced_at: when the
-- edit numbered n replaced it. Deleting the message deletes them.
CREATE TABLE IF NOT EXISTS message_edits (
  conversation_id  text NOT NULL,
  message_id       text NOT NULL,
  n                integer NOT NULL,
  body             bytea NOT NULL,
  replaced_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, message_id, n),
  FOREIGN KEY (conversation_id, message_id) REFERENCES message_changes(conversation_id, message_id) ON DELETE CASCADE
);
-- Reactions: a set of emoji per user per message. ord keeps the first-use order.
CREATE TABLE IF NOT EXISTS message_reactions (
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  message_id       text NOT NULL,
  user_id          bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  emoji            text NOT NULL,
  ord              bigserial,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, message_id, user_id, emoji)
);
