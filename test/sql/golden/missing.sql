-- No pg_biha/status.json: the controller of this node is not running. Every function says so;
-- no command is sent.
SELECT * FROM biha.status_v;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM biha.status();
SELECT * FROM biha.nodes_v;
SELECT * FROM biha.nodes();
SELECT * FROM biha.config();
SELECT * FROM biha.error_details();
SELECT * FROM biha.monitoring();
SELECT biha.set_leader(2);
SELECT biha.get_magic_string();
SELECT biha.reset_node_error();
SELECT biha.service_mode(true);
-- argument checks come first
SELECT biha.set_leader(-1);
-- the schema itself is still readable
SELECT version FROM biha.schema_version;
