-- Error paths on the leader (node 1), each through the real controller unless noted.
-- arguments checked in SQL before anything is sent
SELECT biha.set_leader(0);
SELECT biha.set_priority(2, -1);
SELECT biha.set_heartbeat_max_lost(0);
SELECT biha.set_sync_standbys(-1);
SET biha.command_timeout_ms = 0;
SELECT biha.set_leader(1);
RESET biha.command_timeout_ms;
-- unknown node ids
SELECT biha.set_leader(9);
SELECT biha.remove_node(9);
SELECT biha.set_priority(9, 1);
SELECT biha.set_can_be_leader(9, false);
SELECT biha.set_can_vote(9, false);
-- values out of range for the controller
SELECT biha.set_heartbeat_max_lost(1);
SELECT biha.set_heartbeat_max_lost(1001);
SELECT biha.set_heartbeat_send_period(5);
-- removing the leader
SELECT biha.remove_node(1);
-- a switchover to the node that already leads: nothing to do
SELECT biha.set_leader(1);
-- a biha_cluster_management_role member calls leader-only setters (values left as they are)
SET SESSION AUTHORIZATION sqlc_manager;
SELECT biha.set_priority(3, 0);
SELECT biha.set_no_wal_on_follower(20000);
RESET SESSION AUTHORIZATION;
-- none of the above changed the cluster
SELECT nquorum, minnodes, heartbeat_send_period, heartbeat_max_lost, no_wal_on_follower,
       sync_standbys, service_mode FROM biha.config();
SELECT id, leader_id, online, state FROM biha.status_v ORDER BY id;
