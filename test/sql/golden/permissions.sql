-- Who may do what. biha_test_monitor is a member of pg_monitor, biha_test_manager of
-- biha_cluster_management_role, biha_test_plain of nothing.

-- pg_monitor reads everything and changes nothing
SET SESSION AUTHORIZATION biha_test_monitor;
SELECT count(*) FROM biha.status_v;
SELECT count(*) FROM biha.status();
SELECT count(*) FROM biha.nodes_v;
SELECT count(*) FROM biha.nodes();
SELECT id FROM biha.config();
SELECT type FROM biha.error_details();
SELECT count(*) FROM biha.monitoring();
SELECT version FROM biha.schema_version;
SELECT biha.set_leader(2);
\echo :LAST_ERROR_SQLSTATE
SELECT biha.get_magic_string();
SELECT biha.reset_node_error();
SELECT biha.set_priority(2, 1);
-- the internals are granted to nobody, and the bridge gives no file access of its own
SELECT biha._command('set_leader', '{"id": 2}', 1000);
SELECT biha._status_doc();
SELECT pg_read_file('pg_biha/status.json', 0, 100, true);
RESET SESSION AUTHORIZATION;

-- a role without biha grants gets nothing
SET SESSION AUTHORIZATION biha_test_plain;
SELECT * FROM biha.status_v;
SELECT * FROM biha.nodes_v;
SELECT * FROM biha.schema_version;
SELECT * FROM biha.status();
SELECT * FROM biha.nodes();
SELECT * FROM biha.config();
SELECT * FROM biha.error_details();
SELECT * FROM biha.monitoring();
SELECT biha.set_leader(2);
SELECT biha.remove_node(3);
SELECT biha.get_magic_string();
SELECT biha.set_heartbeat_max_lost(5);
SELECT biha.set_heartbeat_send_period(250);
SELECT biha.set_no_wal_on_follower(30000);
SELECT biha.set_nquorum_and_minnodes(2, 2);
SELECT biha.reset_node_error();
SELECT biha.set_sync_standbys(1);
SELECT biha.set_sync_standbys(1, true);
SELECT biha.set_nquorum_and_minnodes(2, 2, true);
SELECT biha.service_mode(true);
SELECT biha.set_can_be_leader(3, false);
SELECT biha.set_can_vote(3, false);
SELECT biha.set_priority(2, 10);
SELECT biha._command('set_leader', '{"id": 2}', 1000);
RESET SESSION AUTHORIZATION;

-- biha_cluster_management_role reads and changes; its session user reaches the controller
SET SESSION AUTHORIZATION biha_test_manager;
SELECT count(*) FROM biha.status_v;
SELECT id FROM biha.config();
SELECT biha.set_leader(2);
SELECT biha.get_magic_string();
SELECT biha.set_priority(2, 5);
SELECT biha.service_mode(true);
SELECT biha.set_sync_standbys(1, allow_sync_loss => true);
SELECT biha.reset_node_error();
SELECT biha._command('set_leader', '{"id": 2}', 1000);
RESET SESSION AUTHORIZATION;
