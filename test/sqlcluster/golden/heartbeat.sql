-- A heartbeat change asked for from SQL on the leader (node 2 since the switchover).
SELECT heartbeat_max_lost FROM biha.config();
SELECT biha.set_heartbeat_max_lost(7);
