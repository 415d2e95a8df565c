-- revision 2
-- parley_append: append entries to users' streams. Locks the users in id order, in one statement
-- (FOR NO KEY UPDATE: the stream counter is not a key, so foreign-key checks of other writers --
-- a message's sender, a new member -- which take KEY SHARE on the same rows, do not wait on it and
-- cannot turn into a lock upgrade that deadlocks), bumps each stream counter by its number of
-- entries and inserts the entries with consecutive sequence numbers (in array order). Returns each
-- user's new head and how many entries they got. Always the last lock a write transaction takes.
CREATE OR REPLACE FUNCTION parley_append(
  p_user bigint[], p_type text[], p_conv text[], p_msgseq bigint[], p_sender bigint[], p_payload jsonb[]
) RETURNS TABLE (out_user bigint, out_head bigint, out_n int)
LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(cardinality(p_user), 0) = 0 THEN
    RETURN;
  END IF;
  PERFORM 1 FROM users WHERE id = ANY (p_user) ORDER BY id FOR NO KEY UPDATE;
  RETURN QUERY
  WITH entries AS (
    SELECT e.u, e.t, e.c, e.ms, e.s, e.pl,
           row_number() OVER (PARTITION BY e.u ORDER BY e.ord) AS k,
           count(*) OVER (PARTITION BY e.u) AS n
    FROM unnest(p_user, p_type, p_conv, p_msgseq, p_sender, p_payload) WITH ORDINALITY AS e(u, t, c, ms, s, pl, ord)
  ),
  bumped AS (
    UPDATE users SET stream_seq = users.stream_seq + x.n
    FROM (SELECT DISTINCT entries.u, entries.n FROM entries) AS x
    WHERE users.id = x.u
    RETURNING users.id AS uid, users.stream_seq AS top, x.n AS n
  ),
  ins AS (
    INSERT INTO events (user_id, seq, type, conversation_id, msg_seq, sender_id, payload)
    SELECT e.u, b.top - e.n + e.k, e.t, e.c, e.ms, e.s, e.pl FROM entries e JOIN bumped b ON b.uid = e.u
    RETURNING 1
  )
  SELECT b.uid, b.top, b.n::int FROM bumped b WHERE (SELECT count(*) FROM ins) >= 0;
END
$$;
