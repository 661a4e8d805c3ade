-- Readers on a node whose controller is healthy (fixture "healthy": 1 is the leader, 3 is lost).
-- Runs on the hot standby and on the primary with the same expected output.
-- Volatile values (times since heartbeats, the status file's age) are shown as checks.

-- The public API: names, arguments, results, SECURITY DEFINER and grants.
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS result,
       p.prosecdef AS definer, p.proacl
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'biha' AND p.proname !~ '^_'
 ORDER BY p.proname, args;
SELECT p.proname, p.prosecdef AS definer, p.proacl
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'biha' AND p.proname ~ '^_'
 ORDER BY p.proname;
SELECT c.relname, c.relkind, c.relacl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'biha' AND c.relkind IN ('r', 'v') ORDER BY c.relname;
SELECT version FROM biha.schema_version;

-- biha.status_v / biha.status()
SELECT id, leader_id, term, online, state, last_known_state,
       since_last_hb IS NOT NULL AS has_hb,
       since_last_hb - make_interval(secs => CASE id WHEN 1 THEN 0.25 ELSE 15 END) BETWEEN interval '0' AND interval '1 min' AS hb_in_range
  FROM biha.status_v;
SELECT (SELECT array_agg(s ORDER BY s.id) FROM (SELECT id, leader_id, term, online, state, last_known_state FROM biha.status()) s)
     = (SELECT array_agg(v ORDER BY v.id) FROM (SELECT id, leader_id, term, online, state, last_known_state FROM biha.status_v) v)
       AS status_matches_view;
-- since_last_hb is live: it grows between two reads of the same file.
SELECT since_last_hb AS hb1 FROM biha.status_v WHERE id = 3 \gset
SELECT pg_sleep(0.05);
SELECT since_last_hb > :'hb1'::interval AS hb_grows FROM biha.status_v WHERE id = 3;

-- biha.nodes_v / biha.nodes()
SELECT id, host, port, state, since_conn_start >= interval '60 s' AS conn_at_least_60s, conn_count FROM biha.nodes_v;
SELECT count(*) FROM biha.nodes();

-- biha.config()
SELECT * FROM biha.config();

-- biha.error_details()
SELECT * FROM biha.error_details();

-- biha.monitoring()
SELECT node_id, pg_state, status_age_ms BETWEEN 0 AND 10000 AS fresh, follower_id, application_name,
       follower_state, sync_state, lag_bytes, lag_ms
  FROM biha.monitoring();
