-- revision 3
-- parley_send: a batch of messages (group commit). For each item, in order: 'no_conversation',
-- 'not_member', or 'ok' with the message (created, or the earlier one with the same client_id,
-- whose body and attachment are returned). Then one 'head' row per user whose stream moved, with,
-- for a user who got exactly one entry, which message it is (so the wake-up can carry it).
-- Sending in a conversation accepts it (consent: the sender now shares presence and receipts
-- with its members). Locks: the batch's conversations in id order in one statement, then the
-- member rows of senders who accept, in (conversation, user) order, then the users (parley_append).
CREATE OR REPLACE FUNCTION parley_send(
  p_conv text[], p_id text[], p_sender bigint[], p_body bytea[], p_client text[], p_attachment jsonb[]
) RETURNS TABLE (
  r_idx int, r_outcome text, r_id text, r_seq bigint, r_sender_name text, r_sent_at timestamptz,
  r_created boolean, r_body bytea, r_attachment jsonb, r_user bigint, r_head bigint, r_n int,
  r_conv text, r_msgseq bigint
)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  i int;
  v_seq bigint;
  v_at timestamptz;
  v_name text;
  v_old record;
  v_members bigint[];
  v_pending boolean;
  a_conv text[] := '{}';
  a_user bigint[] := '{}';
  e_user bigint[] := '{}';
  e_conv text[] := '{}';
  e_msgseq bigint[] := '{}';
  e_sender bigint[] := '{}';
BEGIN
  PERFORM 1 FROM conversations WHERE id = ANY (p_conv) ORDER BY id FOR NO KEY UPDATE;
  FOR i IN 1 .. coalesce(cardinality(p_conv), 0) LOOP
    r_idx := i; r_id := NULL; r_seq := NULL; r_sender_name := NULL; r_sent_at := NULL; r_created := NULL;
    r_body := NULL; r_attachment := NULL; r_user := NULL; r_head := NULL; r_n := NULL;
    IF NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = p_conv[i]) THEN
      r_outcome := 'no_conversation';
      RETURN NEXT;
      CONTINUE;
    END IF;
    SELECT coalesce(array_agg(m.user_id ORDER BY m.user_id), '{}'), coalesce(bool_or(m.user_id = p_sender[i] AND NOT m.accepted), false)
      INTO v_members, v_pending FROM members m WHERE m.conversation_id = p_conv[i];
    IF NOT (p_sender[i] = ANY (v_members)) THEN
      r_outcome := 'not_member';
      RETURN NEXT;
      CONTINUE;
    END IF;
    IF v_pending THEN
      a_conv := a_conv || p_conv[i];
      a_user := a_user || p_sender[i];
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
  -- Senders who had not accepted their conversation now have: their member rows in (conversation,
  -- user) order, as parley_advance locks them
  IF cardinality(a_conv) > 0 THEN
    PERFORM 1 FROM members m JOIN unnest(a_conv, a_user) AS v(c, u) ON m.conversation_id = v.c AND m.user_id = v.u
    ORDER BY m.conversation_id, m.user_id FOR NO KEY UPDATE OF m;
    UPDATE members m SET accepted = true FROM unnest(a_conv, a_user) AS v(c, u) WHERE m.conversation_id = v.c AND m.user_id = v.u;
  END IF;
  -- With each head, for a user who got exactly one entry, which message it is (so the wake-up
  -- can carry it).
  RETURN QUERY
  SELECT NULL::int, 'head'::text, NULL::text, NULL::bigint, NULL::text, NULL::timestamptz, NULL::boolean,
         NULL::bytea, NULL::jsonb, a.out_user, a.out_head, a.out_n, x.c, x.ms
  FROM parley_append(e_user, array_fill('message'::text, ARRAY[cardinality(e_user)]), e_conv, e_msgseq, e_sender,
                     array_fill(NULL::jsonb, ARRAY[cardinality(e_user)])) AS a
  LEFT JOIN LATERAL (
    SELECT v.c, v.ms FROM unnest(e_user, e_conv, e_msgseq) AS v(u, c, ms) WHERE v.u = a.out_user LIMIT 1
  ) AS x ON a.out_n = 1;
END
$$;
