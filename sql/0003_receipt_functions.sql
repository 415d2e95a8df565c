-- Acknowledgements and read markers in one round trip each (see 0002 for why). Lock order as
-- everywhere: acks (by user) → members (by conversation, user) → users (by id, in parley_append).

-- Move members' delivered or read positions forward and append the receipts that follow: one
-- coalesced "delivered/read up to N" per conversation to each sender of a message in the range,
-- and for 'read' also one to the reader (their other devices clear their unread counts).
CREATE OR REPLACE FUNCTION parley_advance(
  p_status text, p_user bigint[], p_name text[], p_conv text[], p_upto bigint[]
) RETURNS TABLE (out_user bigint, out_head bigint, out_n int)
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
  RETURN QUERY SELECT a.out_user, a.out_head, a.out_n FROM parley_append(
    e_user, array_fill('receipt'::text, ARRAY[cardinality(e_user)]), e_conv,
    array_fill(NULL::bigint, ARRAY[cardinality(e_user)]), array_fill(NULL::bigint, ARRAY[cardinality(e_user)]), e_payload) AS a;
END
$$;

-- Devices acknowledged their users' streams up to p_upto (one entry per user): advance each
-- user's acknowledged position and the delivered positions of the conversations whose messages
-- from others it covered.
CREATE OR REPLACE FUNCTION parley_ack(p_user bigint[], p_name text[], p_upto bigint[])
RETURNS TABLE (out_user bigint, out_head bigint, out_n int)
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
  RETURN QUERY SELECT a.out_user, a.out_head, a.out_n FROM parley_advance('delivered', t_user, t_name, t_conv, t_top) AS a;
END
$$;
