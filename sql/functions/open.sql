-- revision 1
-- parley_open: create a batch of conversations in one round trip (group commit of opens, as
-- parley_send is of sends). Items: id, kind, title, direct key ("<lower id>:<higher id>", null for
-- a group), wrapped key, owner, what new members may read ('joined' or 'all'); members as (item index, user id) pairs, each member once per item.
-- A direct conversation whose pair already has one (or gets one earlier in the same batch) is not
-- created: its row gives the existing id. Rows: one per item (r_idx, r_id, r_created), then one
-- per user whose stream moved (r_user, r_head), each new member having a "conversation" entry.
-- Locks: the new rows go in direct-key order, so two batches opening the same pairs wait on each
-- other's keys in one order, never in a cycle; then the users, in id order (parley_append). The
-- member rows' foreign-key checks take KEY SHARE on users, which a stream append
-- (FOR NO KEY UPDATE) does not wait on.
CREATE OR REPLACE FUNCTION parley_open(
  p_id text[], p_kind text[], p_title text[], p_key text[], p_wrapped bytea[], p_owner bigint[], p_history text[],
  p_member_idx int[], p_member_user bigint[]
) RETURNS TABLE (r_idx int, r_id text, r_created boolean, r_user bigint, r_head bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_new text[];
  e_user bigint[];
  e_conv text[];
BEGIN
  WITH ins AS (
    INSERT INTO conversations (id, kind, title, direct_key, wrapped_key, history)
    SELECT t.id, t.kind, t.title, t.k, t.w, t.h
    FROM unnest(p_id, p_kind, p_title, p_key, p_wrapped, p_history) AS t(id, kind, title, k, w, h)
    ORDER BY t.k, t.id
    ON CONFLICT (direct_key) DO NOTHING
    RETURNING id
  )
  SELECT coalesce(array_agg(ins.id), '{}') INTO v_new FROM ins;

  WITH mem AS (
    INSERT INTO members (conversation_id, user_id, role, accepted)
    SELECT p_id[m.i], m.u, CASE WHEN m.u = p_owner[m.i] AND p_kind[m.i] = 'group' THEN 'owner' ELSE 'member' END,
           m.u = p_owner[m.i] -- the others have not consented yet
    FROM unnest(p_member_idx, p_member_user) AS m(i, u)
    WHERE p_id[m.i] = ANY (v_new)
    RETURNING conversation_id, user_id
  )
  SELECT coalesce(array_agg(mem.user_id), '{}'), coalesce(array_agg(mem.conversation_id), '{}') INTO e_user, e_conv FROM mem;

  -- A later statement: it sees the rows of concurrent openers that committed while this one
  -- waited on their keys.
  RETURN QUERY
  SELECT t.i::int, CASE WHEN t.id = ANY (v_new) THEN t.id ELSE (SELECT c.id FROM conversations c WHERE c.direct_key = t.k) END,
         t.id = ANY (v_new), NULL::bigint, NULL::bigint
  FROM unnest(p_id, p_key) WITH ORDINALITY AS t(id, k, i);

  RETURN QUERY
  SELECT NULL::int, NULL::text, NULL::boolean, a.out_user, a.out_head
  FROM parley_append(e_user, array_fill('conversation'::text, ARRAY[cardinality(e_user)]), e_conv,
                     array_fill(NULL::bigint, ARRAY[cardinality(e_user)]), array_fill(NULL::bigint, ARRAY[cardinality(e_user)]),
                     array_fill('{"change": "created"}'::jsonb, ARRAY[cardinality(e_user)])) AS a;
END
$$;
