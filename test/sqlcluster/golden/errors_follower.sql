-- Error paths on a follower (node 2; node 1 leads). set_leader and remove_node are passed to the
-- leader and fail there; the other changers must be called on the leader.
SELECT biha.set_leader(9);
SELECT biha.remove_node(9);
-- removing the leader
SELECT biha.remove_node(1);
-- leader-only setters called on a follower
SELECT biha.set_heartbeat_max_lost(7);
SELECT biha.set_heartbeat_max_lost(1);
SELECT biha.set_heartbeat_send_period(500);
SELECT biha.set_priority(9, 1);
SELECT biha.set_sync_standbys(1);
SELECT biha.service_mode(true);
SET SESSION AUTHORIZATION sqlc_manager;
SELECT biha.set_priority(3, 0);
RESET SESSION AUTHORIZATION;
-- arguments checked in SQL: the same answer as on the leader
SELECT biha.set_leader(0);
SELECT biha.set_priority(2, -1);
-- a switchover to the node that already leads, passed to the leader: nothing to do
SELECT biha.set_leader(1);
-- a follower is read-only: roles are created on the leader
CREATE ROLE sqlc_not_here;
-- none of the above changed the cluster
SELECT nquorum, minnodes, heartbeat_send_period, heartbeat_max_lost, no_wal_on_follower,
       sync_standbys, service_mode FROM biha.config();
SELECT id, leader_id, online, state FROM biha.status_v ORDER BY id;
