-- A node in NODE_ERROR (fixture "node_error"): the error's details, then biha.reset_node_error().
SELECT id, state FROM biha.status_v WHERE id = 2;
SELECT * FROM biha.error_details();
SELECT type, begin_lsn < end_lsn AS range_ok, replay_lsn > end_lsn AS replayed_past, next_tli = current_tli + 1 AS next_tli_ok
  FROM biha.error_details();
SELECT node_id, pg_state, follower_id FROM biha.monitoring();
SELECT biha.reset_node_error();
SELECT pg_typeof(biha.reset_node_error()) AS returns;
