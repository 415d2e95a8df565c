-- revision 2
-- parley_ack: devices acknowledged their users' streams up to a position; the messages from
-- others in the acknowledged range become "delivered" (parley_advance). Locks: acks rows in user
-- order in one statement, then member rows, then users.
CREATE OR REPLACE FUNCTION parley_ack(p_user bigint[], p_name text[], p_upto bigint[])
RETURNS TABLE (out_user bigint, out_head bigint, out_n int, out_conv text, out_payload jsonb)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
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
  ORDER BY a.user_id FOR NO KEY UPDATE OF a;
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
