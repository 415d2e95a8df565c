-- Applied by databases created before the SQL functions moved to sql/functions/ (one file each,
-- re-applied by every migrate when changed). What this migration once created is there now, as it
-- is today; the number stays so that every database's recorded versions line up.
SELECT 1;
