-- pg_biha/status.json written 60 s ago (fixture "healthy", not refreshed): the controller stopped
-- writing it. Readers show the last known data with a NOTICE, biha.status_v reports every node as
-- UNKNOWN (offline, with its last state in last_known_state); commands fail at once.
SELECT id, leader_id, term, online, state, last_known_state, since_last_hb > interval '60 s' AS hb_over_60s
  FROM biha.status_v;
SELECT id, host, state, conn_count FROM biha.nodes_v;
SELECT id, term, nquorum FROM biha.config();
SELECT type FROM biha.error_details();
SELECT node_id, pg_state, status_age_ms >= 60000 AS age_over_60s, follower_id FROM biha.monitoring();
SELECT biha.set_leader(2);
\echo :LAST_ERROR_SQLSTATE
SELECT biha.get_magic_string();
