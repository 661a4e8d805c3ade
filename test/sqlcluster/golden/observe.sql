-- What every node knows after the switchover to node 2 and heartbeat_max_lost = 7, both made
-- from SQL. :term_before is the term before the switchover.
SELECT id, leader_id, online, state, since_last_hb IS NOT NULL AS heard FROM biha.status_v ORDER BY id;
SELECT term > :term_before AS new_term, nquorum, minnodes, heartbeat_send_period, heartbeat_max_lost,
       no_wal_on_follower, sync_standbys, service_mode
  FROM biha.config();
SELECT pg_is_in_recovery() = (id <> 2) AS pg_matches_role FROM biha.config();
SELECT DISTINCT pg_state = CASE WHEN node_id = 2 THEN 'promoted' ELSE 'recovery' END AS pg_state_matches
  FROM biha.monitoring();
