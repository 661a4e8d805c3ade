-- Roles for the permission checks, created on the leader (a follower is read-only; the roles
-- reach it through WAL). sqlc_monitor is a member of pg_monitor, sqlc_manager of
-- biha_cluster_management_role, sqlc_plain of nothing.
CREATE ROLE sqlc_monitor IN ROLE pg_monitor;
CREATE ROLE sqlc_manager IN ROLE biha_cluster_management_role;
CREATE ROLE sqlc_plain;
SELECT rolname,
       pg_has_role(rolname, 'pg_monitor', 'member') AS monitor,
       pg_has_role(rolname, 'biha_cluster_management_role', 'member') AS manager
  FROM pg_catalog.pg_roles WHERE rolname LIKE 'sqlc\_%' ORDER BY rolname;
