-- Every reader of docs/sql.md, as the superuser postgres, on the node psql is connected to.
-- Volatile values (intervals, ages, terms, lags) are reduced to the facts that must hold.
SELECT version FROM biha.schema_version;
-- the cluster as this node sees it
SELECT id, leader_id, term >= 1 AS has_term, online, state, last_known_state,
       since_last_hb IS NOT NULL AS heard
  FROM biha.status_v ORDER BY id;
-- the control-channel connections of this node to the others
SELECT id, host, port, state, since_conn_start IS NOT NULL AS connected, conn_count >= 1 AS counted
  FROM biha.nodes_v ORDER BY id;
-- the views are the functions
SELECT (SELECT count(*) FROM biha.status()) AS status_rows, (SELECT count(*) FROM biha.nodes()) AS nodes_rows;
-- the configuration, then this node's own settings
SELECT id, term >= 1 AS has_term, nquorum, minnodes, heartbeat_send_period, heartbeat_max_lost,
       no_wal_on_follower, sync_standbys, service_mode, mode, can_be_leader, can_vote, priority
  FROM biha.config();
SELECT (SELECT term FROM biha.config()) = ALL (SELECT term FROM biha.status_v) AS one_term;
SELECT * FROM biha.error_details();
-- this node's PostgreSQL and, on the leader, one row per follower
SELECT node_id, pg_state, status_age_ms >= 0 AS has_age, follower_id, application_name,
       follower_state, sync_state, lag_bytes >= 0 AS lag_bytes_known,
       lag_ms IS NULL OR lag_ms >= 0 AS lag_ms_ok
  FROM biha.monitoring() ORDER BY follower_id;
SELECT pg_is_in_recovery();
-- a magic string for bihactl add: "biha1." then base64url JSON naming every member, leader first
SELECT left(m, 6) AS prefix,
       j->>'c' ~ '^[0-9a-f]{16,64}$' AS has_cluster_id,
       length(j->>'s') >= 32 AS has_secret,
       jsonb_path_query_array(j, '$.l[*].id') AS ids,
       jsonb_path_query_array(j, '$.l[*].port') AS ports
  FROM (SELECT m, convert_from(decode(rpad(translate(substr(m, 7), '-_', '+/'),
                                          (length(m) - 6 + 3) / 4 * 4, '='), 'base64'), 'UTF8')::jsonb AS j
          FROM biha.get_magic_string() AS m) AS x;
-- a command with nothing to do: this node is not in NODE_ERROR
SELECT biha.reset_node_error();
SELECT type FROM biha.error_details();
