-- RETENTION=until-delivered: a message delivered to every member but its sender keeps its row
-- (seq, sender, time: what unread counts and read receipts are worked out from) but loses its
-- content (body emptied, attachment gone). purged_seq is how far every message of a conversation
-- has been so emptied, so that each purge looks only past it.
ALTER TABLE conversations ADD COLUMN purged_seq bigint NOT NULL DEFAULT 0;
