-- Wake-ups that carry the entry. When a commit appends exactly one entry to a user's stream, the
-- write functions now also say which entry (the message's conversation and seq, or the receipt's
-- conversation and payload), so the node can publish it with the wake-up and a woken poll can
-- answer without reading it back. The bodies are those of 0002/0003 otherwise; the result types
-- changed, so the functions are dropped and created again.

DROP FUNCTION IF EXISTS parley_send(text[], text[], bigint[], bytea[], text[], jsonb[]);
DROP FUNCTION IF EXISTS parley_ack(bigint[], text[], bigint[]);
DROP FUNCTION IF EXISTS parley_advance(text, bigint[], text[], text[], bigint[]);

CREATE OR REPLACE FUNCTION parley_send(
  p_conv text[], p_id text[], p_sender bigint[], p_body bytea[], p_client text[], p_attachment jsonb[]
) RETURNS TABLE (
  r_idx int, r_outcome text, r_id text, r_seq bigint, r_sender_name text, r_sent_at timestamptz,
  r_created boolean, r_body bytea, r_attachment jsonb, r_user bigint, r_head bigint, r_n int,
  r_conv text, r_msgseq bigint
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

CREATE OR REPLACE FUNCTION parley_advance(
  p_status text, p_user bigint[], p_name text[], p_conv text[], p_upto bigint[]
) RETURNS TABLE (out_user bigint, out_head bigint, out_n int, out_conv text, out_payload jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  v_at timestamptz := now();
  -- The API's time format: ISO 8601 in UTC with milliseconds and Z, as JavaScript writes it.
  v_iso text := to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  e_user bigint[];
  e_conv text[];
  e_payload jsonb[];
BEGIN
  PERFORM 1 FROM members m JOIN unnest(p_conv, p_user) AS v(c, u) ON m.conversation_id = v.c AND m.user_id = v.u
  ORDER BY m.conversation_id, m.user_id FOR UPDATE OF m;
  -- One statement: every part sees the positions as they were before its updates.
  WITH moved AS (
    SELECT v.c, v.u, v.nm, v.hi, CASE WHEN p_status = 'delivered' THEN m.delivered_seq ELSE m.read_seq END AS lo
    FROM unnest(p_conv, p_user, p_name, p_upto) AS v(c, u, nm, hi)
    JOIN members m ON m.conversation_id = v.c AND m.user_id = v.u
    WHERE v.hi > CASE WHEN p_status = 'delivered' THEN m.delivered_seq ELSE m.read_seq END
  ),
  delivered AS (
    UPDATE members SET delivered_seq = x.hi, delivered_at = v_at FROM moved x
    WHERE p_status = 'delivered' AND members.conversation_id = x.c AND members.user_id = x.u AND members.delivered_seq < x.hi
    RETURNING 1
  ),
  readm AS (
    UPDATE members SET read_seq = x.hi, read_at = v_at, delivered_seq = greatest(members.delivered_seq, x.hi),
      delivered_at = CASE WHEN members.delivered_seq < x.hi THEN v_at ELSE members.delivered_at END
    FROM moved x
    WHERE p_status = 'read' AND members.conversation_id = x.c AND members.user_id = x.u AND members.read_seq < x.hi
    RETURNING 1
  ),
  r AS (
    SELECT DISTINCT m.sender_id AS uid, x.c, x.nm, x.hi FROM moved x
    JOIN messages m ON m.conversation_id = x.c AND m.seq > x.lo AND m.seq <= x.hi AND m.sender_id <> x.u
    UNION ALL
    SELECT x.u, x.c, x.nm, x.hi FROM moved x WHERE p_status = 'read'
  )
  SELECT coalesce(array_agg(r.uid), '{}'), coalesce(array_agg(r.c), '{}'),
         coalesce(array_agg(jsonb_build_object('user', r.nm, 'status', p_status, 'up_to', r.hi, 'at', v_iso)), '{}')
  INTO e_user, e_conv, e_payload
  FROM r WHERE (SELECT count(*) FROM delivered) + (SELECT count(*) FROM readm) >= 0;
  RETURN QUERY SELECT a.out_user, a.out_head, a.out_n, x.c, x.p FROM parley_append(
    e_user, array_fill('receipt'::text, ARRAY[cardinality(e_user)]), e_conv,
    array_fill(NULL::bigint, ARRAY[cardinality(e_user)]), array_fill(NULL::bigint, ARRAY[cardinality(e_user)]), e_payload) AS a
  LEFT JOIN LATERAL (
    SELECT v.c, v.p FROM unnest(e_user, e_conv, e_payload) AS v(u, c, p) WHERE v.u = a.out_user LIMIT 1
  ) AS x ON a.out_n = 1;
END
$$;

CREATE OR REPLACE FUNCTION parley_ack(p_user bigint[], p_name text[], p_upto bigint[])
RETURNS TABLE (out_user bigint, out_head bigint, out_n int, out_conv text, out_payload jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  t_user bigint[];
  t_name text[];
  t_conv text[];
  t_top bigint[];
BEGIN
  -- An acknowledgement lost in a database crash is only repeated by the device's next poll (its
  -- cursor is still before it): no need to wait for the disk, unlike a message's commit.
  PERFORM set_config('synchronous_commit', 'off', true);
  PERFORM 1 FROM acks a JOIN unnest(p_user, p_upto) AS v(u, hi) ON a.user_id = v.u AND v.hi > a.acked_seq
  ORDER BY a.user_id FOR UPDATE OF a;
  WITH req AS (
    SELECT v.u, v.nm, v.hi, a.acked_seq AS lo FROM unnest(p_user, p_name, p_upto) AS v(u, nm, hi)
    JOIN acks a ON a.user_id = v.u WHERE v.hi > a.acked_seq
  ),
  upd AS (
    UPDATE acks SET acked_seq = req.hi FROM req WHERE acks.user_id = req.u RETURNING 1
  ),
  tops AS (
    SELECT e.user_id AS u, req.nm, e.conversation_id AS c, max(e.msg_seq) AS top
    FROM req JOIN events e ON e.user_id = req.u AND e.seq > req.lo AND e.seq <= req.hi
    WHERE e.type = 'message' AND e.sender_id <> e.user_id
    GROUP BY e.user_id, req.nm, e.conversation_id
  )
  SELECT coalesce(array_agg(tops.u), '{}'), coalesce(array_agg(tops.nm), '{}'), coalesce(array_agg(tops.c), '{}'),
         coalesce(array_agg(tops.top), '{}')
  INTO t_user, t_name, t_conv, t_top
  FROM tops WHERE (SELECT count(*) FROM upd) >= 0;
  IF cardinality(t_user) = 0 THEN
    RETURN;
  END IF;
  RETURN QUERY SELECT a.out_user, a.out_head, a.out_n, a.out_conv, a.out_payload
  FROM parley_advance('delivered', t_user, t_name, t_conv, t_top) AS a;
END
$$;
