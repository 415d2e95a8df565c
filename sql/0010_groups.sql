-- Groups their members run: who may add members, and invite links.
-- Who may add members to a group (and manage its invite links): 'admins' (the owner and admins,
-- as before this migration) or 'members' (anyone in it). Direct conversations keep the default.
ALTER TABLE conversations ADD COLUMN who_can_add text NOT NULL DEFAULT 'admins' CHECK (who_can_add IN ('admins', 'members'));

-- Invite links to a group. The code itself is never stored in the clear: `code_hash` (SHA-256 of
-- the code) finds an invite from a link, and `sealed_code` (the code sealed with the group's data
-- key, aad "invite:<conversation>") lets those who manage the group list its links again. A
-- revoked invite keeps its row, so a link to it answers "gone" rather than "unknown".
CREATE TABLE invites (
  code_hash        bytea PRIMARY KEY,
  conversation_id  text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  sealed_code      bytea NOT NULL,
  created_by       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  revoked_at       timestamptz
);
CREATE INDEX invites_conversation ON invites(conversation_id, created_at);
