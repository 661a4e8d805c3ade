-- Who may do what, the same on the leader and on a follower. :leader is the current leader.
-- pg_monitor reads everything and changes nothing
SET SESSION AUTHORIZATION sqlc_monitor;
SELECT count(*) FROM biha.status_v;
SELECT count(*) FROM biha.nodes_v;
SELECT count(*) FROM biha.status();
SELECT count(*) FROM biha.nodes();
SELECT count(*) FROM biha.config();
SELECT type FROM biha.error_details();
SELECT count(*) > 0 AS has_rows FROM biha.monitoring();
SELECT version FROM biha.schema_version;
SELECT biha.set_leader(:leader);
\echo :LAST_ERROR_SQLSTATE
SELECT biha.get_magic_string();
SELECT biha.set_heartbeat_max_lost(7);
SELECT biha.remove_node(3);
RESET SESSION AUTHORIZATION;
-- a role with no biha rights gets PostgreSQL's own permission errors
SET SESSION AUTHORIZATION sqlc_plain;
SELECT * FROM biha.status_v;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM biha.nodes_v;
SELECT * FROM biha.config();
SELECT * FROM biha.monitoring();
SELECT biha.set_leader(:leader);
SELECT biha.get_magic_string();
RESET SESSION AUTHORIZATION;
-- biha_cluster_management_role reads and calls the changers
SET SESSION AUTHORIZATION sqlc_manager;
SELECT count(*) FROM biha.status_v;
SELECT count(*) FROM biha.config();
SELECT biha.set_leader(:leader);
SELECT left(biha.get_magic_string(), 6) AS prefix;
SELECT biha.reset_node_error();
-- the helpers are granted to nobody
SELECT doc IS NOT NULL FROM biha._status_doc();
SELECT biha._command('set_leader', '{"id": 1}', 1000);
RESET SESSION AUTHORIZATION;
