-- The write path in one round trip. Each statement of a transaction costs a network round trip
-- from the node (about 150 µs of node CPU on a loopback socket here, as much again in Postgres, and
-- row locks held meanwhile); these functions run the whole send and the stream append inside the
-- server. Same lock order as everywhere: conversations → users (by id).

-- Append entries to users' streams: lock the users in id order, bump each stream counter by its
-- number of entries, insert the entries with consecutive sequence numbers (in array order).
-- Returns each user's new head and how many entries they got.
CREATE OR REPLACE FUNCTION parley_append(
  p_user bigint[], p_type text[], p_conv text[], p_msgseq bigint[], p_sender bigint[], p_payload jsonb[]
) RETURNS TABLE (out_user bigint, out_head bigint, out_n int)
LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(cardinality(p_user), 0) = 0 THEN
    RETURN;
  END IF;
  PERFORM 1 FROM users WHERE id = ANY (p_user) ORDER BY id FOR UPDATE;
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

-- Send a batch of messages (group commit). For each item, in order: 'no_conversation',
-- 'not_member', or 'ok' with the message (created, or the earlier one with the same client_id,
-- whose body and attachment are returned). Then one 'head' row per user whose stream moved.
CREATE OR REPLACE FUNCTION parley_send(
  p_conv text[], p_id text[], p_sender bigint[], p_body bytea[], p_client text[], p_attachment jsonb[]
) RETURNS TABLE (
  r_idx int, r_outcome text, r_id text, r_seq bigint, r_sender_name text, r_sent_at timestamptz,
  r_created boolean, r_body bytea, r_attachment jsonb, r_user bigint, r_head bigint, r_n int
)
LANGUAGE plpgsql AS $$
DECLARE
  i int;
  v_seq bigint;
  v_at timestamptz;
  v_name text;
  v_old record;
  v_members bigint[];
  e_user bigint[] := '{}';
  e_conv text[] := '{}';
  e_msgseq bigint[] := '{}';
  e_sender bigint[] := '{}';
BEGIN
  PERFORM 1 FROM conversations WHERE id = ANY (p_conv) ORDER BY id FOR UPDATE;
  FOR i IN 1 .. coalesce(cardinality(p_conv), 0) LOOP
    r_idx := i; r_id := NULL; r_seq := NULL; r_sender_name := NULL; r_sent_at := NULL; r_created := NULL;
    r_body := NULL; r_attachment := NULL; r_user := NULL; r_head := NULL; r_n := NULL;
    IF NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = p_conv[i]) THEN
      r_outcome := 'no_conversation';
      RETURN NEXT;
      CONTINUE;
    END IF;
    v_members := ARRAY(SELECT m.user_id FROM members m WHERE m.conversation_id = p_conv[i] ORDER BY m.user_id);
    IF NOT (p_sender[i] = ANY (v_members)) THEN
      r_outcome := 'not_member';
      RETURN NEXT;
      CONTINUE;
    END IF;
    SELECT u.name INTO v_name FROM users u WHERE u.id = p_sender[i];
    r_outcome := 'ok';
    r_sender_name := v_name;
    IF p_client[i] IS NOT NULL THEN
      -- Under the conversation's lock, so this check is exact (also within this batch).
      SELECT m.id, m.seq, m.sent_at, m.body, m.attachment INTO v_old FROM messages m
      WHERE m.conversation_id = p_conv[i] AND m.sender_id = p_sender[i] AND m.client_id = p_client[i];
      IF FOUND THEN
        r_id := v_old.id; r_seq := v_old.seq; r_sent_at := v_old.sent_at; r_created := false;
        r_body := v_old.body; r_attachment := v_old.attachment;
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;
    UPDATE conversations c SET last_seq = c.last_seq + 1 WHERE c.id = p_conv[i] RETURNING c.last_seq INTO v_seq;
    INSERT INTO messages (conversation_id, seq, id, sender_id, body, client_id, attachment)
    VALUES (p_conv[i], v_seq, p_id[i], p_sender[i], p_body[i], p_client[i], p_attachment[i])
    RETURNING sent_at INTO v_at;
    e_user := e_user || v_members;
    e_conv := e_conv || array_fill(p_conv[i], ARRAY[cardinality(v_members)]);
    e_msgseq := e_msgseq || array_fill(v_seq, ARRAY[cardinality(v_members)]);
    e_sender := e_sender || array_fill(p_sender[i], ARRAY[cardinality(v_members)]);
    r_id := p_id[i]; r_seq := v_seq; r_sent_at := v_at; r_created := true;
    RETURN NEXT;
  END LOOP;
  RETURN QUERY
  SELECT NULL::int, 'head'::text, NULL::text, NULL::bigint, NULL::text, NULL::timestamptz, NULL::boolean,
         NULL::bytea, NULL::jsonb, a.out_user, a.out_head, a.out_n
  FROM parley_append(e_user, array_fill('message'::text, ARRAY[cardinality(e_user)]), e_conv, e_msgseq, e_sender,
                     array_fill(NULL::jsonb, ARRAY[cardinality(e_user)])) AS a;
END
$$;
