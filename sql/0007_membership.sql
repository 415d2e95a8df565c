-- Groups their members can trust: admins beside the owner, and what a member may read.
ALTER TABLE members DROP CONSTRAINT members_role_check;
ALTER TABLE members ADD CONSTRAINT members_role_check CHECK (role IN ('owner', 'admin', 'member'));
-- The member reads the conversation's messages after this seq: where it stood when they joined
-- (0: from the start, which is what every member before this migration has).
ALTER TABLE members ADD COLUMN from_seq bigint NOT NULL DEFAULT 0;
-- What a new member of a group may read: 'joined' (from when they joined) or 'all' (everything).
ALTER TABLE conversations ADD COLUMN history text NOT NULL DEFAULT 'joined' CHECK (history IN ('joined', 'all'));
-- Consent: a member who has not accepted a conversation (someone else opened it, or added them to
-- it) shares nothing with its other members -- no presence, no last seen, no receipts -- until
-- they send a message in it or accept it. Members before this migration had all consented.
ALTER TABLE members ADD COLUMN accepted boolean NOT NULL DEFAULT true;
