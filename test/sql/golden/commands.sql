-- Every changer through the bridge, as a superuser. The stand-in controller of the test answers:
-- node 9 is not a member, node 13 makes it throw, set_leader(77) never gets a reply.

-- successes
SELECT biha.set_leader(2);
SELECT biha.remove_node(3);
SELECT biha.get_magic_string();
SELECT biha.set_heartbeat_max_lost(5);
SELECT biha.set_heartbeat_send_period(250);
SELECT biha.set_no_wal_on_follower(30000);
SELECT biha.set_nquorum_and_minnodes(2, 2);
SELECT biha.set_sync_standbys(0);
SELECT biha.set_sync_standbys(1);
-- the overloads that accept a change breaking the zero-loss rule of synchronous mode
SELECT biha.set_sync_standbys(1, allow_sync_loss => true);
SELECT biha.set_sync_standbys(1, false);
SELECT biha.set_nquorum_and_minnodes(2, 2, allow_sync_loss => true);
SELECT biha.service_mode(true);
SELECT biha.service_mode(false);
SELECT biha.set_can_be_leader(3, false);
SELECT biha.set_can_vote(3, false);
SELECT biha.set_priority(2, 10);
SELECT biha.set_priority(2, 0);
SELECT biha.reset_node_error();
-- works inside a read-only transaction too (as every transaction on a standby is)
BEGIN READ ONLY;
SELECT biha.set_priority(2, 1);
COMMIT;

-- the controller refuses: its reason becomes the error
SELECT biha.set_leader(9);
\echo :LAST_ERROR_SQLSTATE
SELECT biha.remove_node(1);
SELECT biha.set_nquorum_and_minnodes(5, 2);
SELECT biha.set_sync_standbys(3);
SELECT biha.set_sync_standbys(3, allow_sync_loss => true);
SELECT biha.set_can_vote(9, true);
SELECT biha.set_priority(13, 1);

-- argument checks made in SQL; these never reach the controller
SELECT biha.set_leader(0);
\echo :LAST_ERROR_SQLSTATE
SELECT biha.set_leader(NULL);
SELECT biha.remove_node(-3);
SELECT biha.set_heartbeat_max_lost(0);
SELECT biha.set_heartbeat_max_lost(NULL);
SELECT biha.set_heartbeat_max_lost(1);
SELECT biha.set_heartbeat_max_lost(1001);
SELECT biha.set_heartbeat_send_period(-1);
SELECT biha.set_heartbeat_send_period(5);
SELECT biha.set_heartbeat_send_period(60001);
SELECT biha.set_no_wal_on_follower(-1);
SELECT biha.set_nquorum_and_minnodes(0, 1);
SELECT biha.set_nquorum_and_minnodes(1, NULL);
SELECT biha.set_sync_standbys(-1);
SELECT biha.set_sync_standbys(-1, true);
SELECT biha.set_sync_standbys(1, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT biha.set_nquorum_and_minnodes(2, 2, NULL);
SELECT biha.service_mode(NULL);
SELECT biha.set_can_be_leader(NULL, true);
SELECT biha.set_can_be_leader(2, NULL);
SELECT biha.set_can_vote(2, NULL);
SELECT biha.set_priority(2, -1);
SELECT biha.set_priority(0, 1);

-- no reply within the session's timeout
SET biha.command_timeout_ms = 300;
SELECT biha.set_leader(77);
\echo :LAST_ERROR_SQLSTATE
-- the timeout applies to the other changers too, and a quick reply is unaffected
SELECT biha.set_priority(2, 2);
SET biha.command_timeout_ms = 'soon';
SELECT biha.set_priority(2, 3);
SET biha.command_timeout_ms = '0';
SELECT biha.set_priority(2, 3);
RESET biha.command_timeout_ms;
SELECT biha.set_priority(2, 4);

-- the failback window: the cron expression is checked by the controller; an empty one never leaves SQL
SELECT biha.set_failback(1, '*/5 * * * *');
SELECT biha.reset_failback();
SELECT biha.set_failback(9, '*/5 * * * *');
SELECT biha.set_failback(1, '');
\echo :LAST_ERROR_SQLSTATE
SELECT biha.set_failback(1, NULL);
SELECT biha.set_failback(NULL, '* * * * *');
