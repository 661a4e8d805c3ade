-- A switchover asked for from SQL on a follower (node 2): node 2 becomes the leader.
SELECT biha.set_leader(2);
