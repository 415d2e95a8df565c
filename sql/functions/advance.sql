-- revision 4
-- parley_advance: move members' delivered or read positions and tell the senders (receipt
-- entries; no read receipt from a member who has not accepted the conversation: consent). Locks: the member rows in (conversation, user) order in one statement, then the users.
CREATE OR REPLACE FUNCTION parley_advance(
  p_status text, p_user bigint[], p_name text[], p_conv text[], p_upto bigint[]
) RETURNS TABLE (out_user bigint, out_head bigint, out_n int, out_conv text, out_payload jsonb)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_at timestamptz := now();
  -- The API's time format: ISO 8601 in UTC with milliseconds and Z, as JavaScript writes it.
  v_iso text := to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  e_user bigint[];
  e_conv text[];
  e_payload jsonb[];
BEGIN
  PERFORM 1 FROM members m JOIN unnest(p_conv, p_user) AS v(c, u) ON m.conversation_id = v.c AND m.user_id = v.u
  ORDER BY m.conversation_id, m.user_id FOR NO KEY UPDATE OF m;
  -- One statement: every part sees the positions as they were before its updates.
  WITH moved AS (
    SELECT v.c, v.u, v.nm, v.hi, CASE WHEN p_status = 'delivered' THEN m.delivered_seq ELSE m.read_seq END AS lo, m.accepted AS acc
    FROM unnest(p_conv, p_user, p_name, p_upto) AS v(c, u, nm, hi)
    JOIN members m ON m.conversation_id = v.c AND m.user_id = v.u
    WHERE v.hi > CASE WHEN p_status = 'delivered' THEN m.delivered_seq ELSE m.read_seq END
  ),
  delivered AS (
    UPDATE members SET delivered_seq = x.hi FROM moved x
    WHERE p_status = 'delivered' AND members.conversation_id = x.c AND members.user_id = x.u AND members.delivered_seq < x.hi
    RETURNING 1
  ),
  readm AS (
    UPDATE members SET read_seq = x.hi, delivered_seq = greatest(members.delivered_seq, x.hi)
    FROM moved x
    WHERE p_status = 'read' AND members.conversation_id = x.c AND members.user_id = x.u AND members.read_seq < x.hi
    RETURNING 1
  ),
  r AS (
    SELECT DISTINCT m.sender_id AS uid, x.c, x.nm, x.hi FROM moved x
    JOIN messages m ON m.conversation_id = x.c AND m.seq > x.lo AND m.seq <= x.hi AND m.sender_id <> x.u
    WHERE x.acc OR p_status = 'delivered'
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
