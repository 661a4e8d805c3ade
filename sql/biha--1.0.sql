-- biha--1.0.sql: the biha schema in the biha_db database, version 1.0 (fresh install).
--
-- Applied by installSql() (src/controller/sqlbridge.ts) as a superuser, on the leader, inside one
-- transaction; the objects reach the followers through WAL. Every function that touches a file is
-- SECURITY DEFINER, owned by that superuser, with search_path pinned to pg_catalog, so that members
-- of pg_monitor and biha_cluster_management_role can use it without any file privileges of their own.
--
-- The bridge to the controller of the local node (this file and src/controller/sqlbridge.ts are its
-- two halves; docs/sql.md describes it for users):
--   reads     PGDATA/pg_biha/status.json, rewritten atomically by the controller at least once per
--             heartbeat period, read with pg_read_file(..., missing_ok => true).
--   commands  PGDATA/pg_biha/cmd/<uuid>.req, written with COPY ... TO as one line of hex-encoded JSON
--             {id, fn, args, user, ts, timeout_ms}; the reply PGDATA/pg_biha/cmd/<uuid>.reply is JSON
--             {id, ok, error?, result?}, polled with pg_read_file and pg_sleep.
-- Both work on a hot standby, so every function works on the leader and on every follower.
--
-- Argument checks that need no knowledge of the cluster are made here, with the same messages the
-- controller's request validation gives (BRIDGE_ARGS in src/controller/sqlbridge.ts).

DO $check$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'biha_cluster_management_role') THEN
    RAISE EXCEPTION 'biha: role biha_cluster_management_role does not exist; create the biha roles before installing the biha schema';
  END IF;
  IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'biha: the biha schema must be installed by a superuser (the functions reading PGDATA/pg_biha run with their owner''s rights)';
  END IF;
END
$check$;

CREATE SCHEMA IF NOT EXISTS biha;
ALTER SCHEMA biha OWNER TO CURRENT_USER;
REVOKE ALL ON SCHEMA biha FROM PUBLIC;
-- USAGE lets every role see the objects, so that a role without EXECUTE gets PostgreSQL's own
-- "permission denied for function ..." rather than a confusing "permission denied for schema".
GRANT USAGE ON SCHEMA biha TO PUBLIC;

CREATE TABLE biha.schema_version (
  one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
  version text NOT NULL,
  installed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE biha.schema_version IS 'Version of the biha schema installed in this database (one row).';
INSERT INTO biha.schema_version (version) VALUES ('1.0');

---------------------------------------------------------------------------------------------------
-- Internal helpers (no EXECUTE for anybody; the SECURITY DEFINER functions below call them as
-- their owner).
---------------------------------------------------------------------------------------------------

-- The parsed status file of this node, its age and whether it is stale. A missing file means the
-- controller of this node is not running: an error. A stale file (older than 10 s, or than three
-- heartbeat periods if that is longer) means the controller stopped writing it: readers still
-- return the last known data, with a NOTICE, and biha.status() reports every node as UNKNOWN.
CREATE FUNCTION biha._status_doc(p_quiet boolean DEFAULT false,
                                 OUT doc jsonb, OUT age_ms double precision, OUT limit_ms double precision,
                                 OUT stale boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_raw text;
BEGIN
  v_raw := pg_read_file('pg_biha/status.json', 0, 4194304, true);
  IF v_raw IS NULL THEN
    RAISE EXCEPTION 'biha: the biha controller of this node is not running (no pg_biha/status.json)'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  BEGIN
    doc := v_raw::jsonb;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'biha: pg_biha/status.json is not valid JSON' USING ERRCODE = 'data_corrupted';
  END;
  IF jsonb_typeof(doc) IS DISTINCT FROM 'object' OR doc->>'version' IS DISTINCT FROM '1' THEN
    RAISE EXCEPTION 'biha: pg_biha/status.json has format version %, this biha schema reads version 1',
      coalesce(doc->>'version', 'none') USING ERRCODE = 'data_corrupted';
  END IF;
  age_ms := greatest(extract(epoch FROM clock_timestamp()) * 1000 - (doc->>'generatedAtMs')::double precision, 0);
  limit_ms := greatest(10000, 3 * coalesce((doc #>> '{config,heartbeat_send_period}')::double precision, 0));
  stale := coalesce(age_ms > limit_ms, true);
  IF stale AND NOT p_quiet THEN
    RAISE NOTICE 'biha: pg_biha/status.json is older than % s: the biha controller of this node is not responding; showing its last known state',
      round((limit_ms / 1000)::numeric, 1);
  END IF;
END
$fn$;

-- The timeout of one command: biha.command_timeout_ms from the session if set, else the default.
CREATE FUNCTION biha._command_timeout_ms(p_default integer) RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v text := nullif(btrim(current_setting('biha.command_timeout_ms', true)), '');
BEGIN
  IF v IS NULL THEN
    RETURN p_default;
  END IF;
  IF v !~ '^[0-9]{1,9}$' OR v::integer < 1 OR v::integer > 600000 THEN
    RAISE EXCEPTION 'biha: biha.command_timeout_ms must be a whole number of milliseconds from 1 to 600000, not "%"', v
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v::integer;
END
$fn$;

-- Sends one request to the controller of this node and waits for its reply. Returns the reply's
-- "result" (SQL NULL when there is none); raises the controller's reason when it refused.
CREATE FUNCTION biha._command(p_fn text, p_args jsonb, p_default_timeout_ms integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_id uuid := gen_random_uuid();
  v_timeout_ms integer := biha._command_timeout_ms(p_default_timeout_ms);
  v_st record;
  v_req text;
  v_reply_file text := 'pg_biha/cmd/' || v_id || '.reply';
  v_raw text;
  v_reply jsonb;
  v_deadline timestamptz;
  v_sleep double precision := 0.002;
  v_polls integer := 0;
BEGIN
  SELECT * INTO v_st FROM biha._status_doc(true);
  IF v_st.stale THEN
    RAISE EXCEPTION 'biha: the biha controller of this node is not responding (pg_biha/status.json is older than % s)',
      round((v_st.limit_ms / 1000)::numeric, 1) USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;

  -- pid: a switchover asked for on the leader's own session starts once this statement finished.
  v_req := jsonb_build_object('id', v_id, 'fn', p_fn, 'args', p_args, 'user', session_user,
                              'ts', (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                              'timeout_ms', v_timeout_ms, 'pid', pg_backend_pid())::text;
  v_deadline := clock_timestamp() + v_timeout_ms * interval '1 millisecond';
  BEGIN
    -- Hex keeps COPY's text format from escaping anything; the final newline marks a complete file.
    EXECUTE format('COPY (SELECT %L) TO %L', encode(convert_to(v_req, 'UTF8'), 'hex'),
                   current_setting('data_directory') || '/pg_biha/cmd/' || v_id || '.req');
  EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'biha: cannot pass the request to the biha controller of this node: %', SQLERRM
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END;

  LOOP
    v_raw := pg_read_file(v_reply_file, 0, 4194304, true);
    EXIT WHEN v_raw IS NOT NULL;
    IF clock_timestamp() >= v_deadline THEN
      RAISE EXCEPTION 'biha: the biha controller did not reply to % within % ms', p_fn, v_timeout_ms
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM pg_sleep(v_sleep);
    -- 2 ms for the first 20 ms (most replies arrive by then), then backing off to 20 ms.
    v_polls := v_polls + 1;
    IF v_polls >= 10 THEN
      v_sleep := least(v_sleep * 1.5, 0.020);
    END IF;
  END LOOP;

  BEGIN
    v_reply := v_raw::jsonb;
  EXCEPTION WHEN invalid_text_representation THEN
    v_reply := NULL;
  END;
  IF jsonb_typeof(v_reply) IS DISTINCT FROM 'object' OR v_reply->>'id' IS DISTINCT FROM v_id::text
     OR jsonb_typeof(v_reply->'ok') IS DISTINCT FROM 'boolean' THEN
    RAISE EXCEPTION 'biha: malformed reply from the biha controller to %', p_fn USING ERRCODE = 'protocol_violation';
  END IF;
  IF NOT (v_reply->'ok')::boolean THEN
    RAISE EXCEPTION 'biha: %', coalesce(v_reply->>'error', 'the biha controller refused ' || p_fn || ' without a reason');
  END IF;
  RETURN nullif(v_reply->'result', 'null'::jsonb);
END
$fn$;

-- The boolean a changer returns: the controller's result when it sent a boolean, true otherwise.
CREATE FUNCTION biha._bool_result(p_result jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT CASE WHEN jsonb_typeof(p_result) = 'boolean' THEN p_result::text::boolean ELSE true END
$fn$;

CREATE FUNCTION biha._check_id(p_id integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF p_id IS NULL OR p_id < 1 THEN
    RAISE EXCEPTION 'biha: node id must be a positive integer, not %', coalesce(p_id::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$fn$;

-- p_min = 1: "positive"; p_min = 0: "zero or positive".
CREATE FUNCTION biha._check_int(p_name text, p_value integer, p_min integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF p_value IS NULL OR p_value < p_min THEN
    RAISE EXCEPTION 'biha: % must be % integer, not %', p_name,
      CASE WHEN p_min = 0 THEN 'a non-negative' ELSE 'a positive' END, coalesce(p_value::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$fn$;

-- The ranges of the cluster parameters (PARAM_RANGES in src/raft/config.ts).
CREATE FUNCTION biha._check_range(p_name text, p_value integer, p_min integer, p_max integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF p_value IS NULL OR p_value < p_min OR p_value > p_max THEN
    RAISE EXCEPTION 'biha: % must be an integer from % to %, not %', p_name, p_min, p_max,
      coalesce(p_value::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$fn$;

CREATE FUNCTION biha._check_bool(p_name text, p_value boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF p_value IS NULL THEN
    RAISE EXCEPTION 'biha: % must be true or false, not NULL', p_name USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$fn$;

---------------------------------------------------------------------------------------------------
-- Readers (pg_monitor and biha_cluster_management_role)
---------------------------------------------------------------------------------------------------

CREATE FUNCTION biha.status(OUT id integer, OUT leader_id integer, OUT term bigint, OUT online boolean,
                            OUT state text, OUT last_known_state text, OUT since_last_hb interval,
                            OUT mode text)
RETURNS SETOF record
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT s.id, s.leader_id, s.term,
         CASE WHEN d.stale THEN false ELSE s.online END,
         CASE WHEN d.stale THEN 'UNKNOWN' ELSE s.state END,
         CASE WHEN d.stale AND s.state IS DISTINCT FROM 'UNKNOWN' THEN s.state ELSE s.last_known_state END,
         (s.since_last_hb_ms + d.age_ms) * interval '1 millisecond',
         s.mode
    FROM biha._status_doc() AS d,
         jsonb_to_recordset(d.doc->'status') AS s(id integer, leader_id integer, term bigint, online boolean,
                                                 state text, last_known_state text,
                                                 since_last_hb_ms double precision, mode text)
   ORDER BY s.id
$fn$;
COMMENT ON FUNCTION biha.status() IS 'State of every node of the cluster as this node sees it (defines biha.status_v).';

CREATE FUNCTION biha.nodes(OUT id integer, OUT host text, OUT port integer, OUT state text,
                           OUT since_conn_start interval, OUT conn_count bigint)
RETURNS SETOF record
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT n.id, n.host, n.port, n.state,
         (n.since_conn_start_ms + d.age_ms) * interval '1 millisecond',
         n.conn_count
    FROM biha._status_doc() AS d,
         jsonb_to_recordset(d.doc->'nodes') AS n(id integer, host text, port integer, state text,
                                                since_conn_start_ms double precision, conn_count bigint)
   ORDER BY n.id
$fn$;
COMMENT ON FUNCTION biha.nodes() IS 'Control-channel connection of this node to every other node (defines biha.nodes_v).';

CREATE FUNCTION biha.config(OUT id integer, OUT term bigint, OUT nquorum integer, OUT minnodes integer,
                            OUT heartbeat_send_period integer, OUT heartbeat_max_lost integer,
                            OUT no_wal_on_follower integer, OUT sync_standbys integer,
                            OUT service_mode boolean, OUT mode text, OUT can_be_leader boolean,
                            OUT can_vote boolean, OUT priority integer)
RETURNS SETOF record
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT c.id, c.term, c.nquorum, c.minnodes, c.heartbeat_send_period, c.heartbeat_max_lost,
         c.no_wal_on_follower, c.sync_standbys, c.service_mode, c.mode, c.can_be_leader, c.can_vote,
         c.priority
    FROM biha._status_doc() AS d,
         jsonb_to_record(d.doc->'config') AS c(id integer, term bigint, nquorum integer, minnodes integer,
                                              heartbeat_send_period integer, heartbeat_max_lost integer,
                                              no_wal_on_follower integer, sync_standbys integer,
                                              service_mode boolean, mode text, can_be_leader boolean,
                                              can_vote boolean, priority integer)
$fn$;
COMMENT ON FUNCTION biha.config() IS 'Cluster configuration as this node knows it, and the settings of this node.';

CREATE FUNCTION biha.error_details(OUT type text, OUT details text, OUT begin_lsn pg_lsn, OUT end_lsn pg_lsn,
                                   OUT current_tli bigint, OUT next_tli bigint, OUT replay_lsn pg_lsn)
RETURNS SETOF record
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT e.type, e.details, e.begin_lsn::pg_lsn, e.end_lsn::pg_lsn, e.current_tli, e.next_tli,
         e.replay_lsn::pg_lsn
    FROM biha._status_doc() AS d,
         jsonb_to_record(d.doc->'error') AS e(type text, details text, begin_lsn text, end_lsn text,
                                             current_tli bigint, next_tli bigint, replay_lsn text)
$fn$;
COMMENT ON FUNCTION biha.error_details() IS 'Why this node is in NODE_ERROR (type NO_ERROR when it is not).';

CREATE FUNCTION biha.monitoring(OUT node_id integer, OUT pg_state text, OUT status_age_ms bigint,
                                OUT follower_id integer, OUT application_name text, OUT follower_state text,
                                OUT sync_state text, OUT lag_bytes bigint, OUT lag_ms bigint)
RETURNS SETOF record
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT (d.doc->>'nodeId')::integer, d.doc #>> '{monitoring,pg_state}', round(d.age_ms)::bigint,
         f.id, f.application_name, f.state, f.sync_state, round(f.lag_bytes)::bigint, round(f.lag_ms)::bigint
    FROM biha._status_doc() AS d
         LEFT JOIN LATERAL jsonb_to_recordset(coalesce(d.doc #> '{monitoring,followers}', '[]'::jsonb))
           AS f(id integer, application_name text, state text, sync_state text,
                lag_bytes double precision, lag_ms double precision) ON true
   ORDER BY f.id
$fn$;
COMMENT ON FUNCTION biha.monitoring() IS 'PostgreSQL state of this node and, on the leader, one row per follower with its replication lag.';

CREATE FUNCTION biha.last_switchover(OUT target integer, OUT state text, OUT detail text,
                                     OUT started_at timestamptz, OUT finished_at timestamptz)
RETURNS SETOF record
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT w.target, w.state, w.detail, to_timestamp(w.started_at_ms / 1000), to_timestamp(w.finished_at_ms / 1000)
    FROM biha._status_doc() AS d,
         jsonb_to_record(d.doc #> '{extra,switchover}') AS w(target integer, state text, detail text,
                                                           started_at_ms double precision,
                                                           finished_at_ms double precision)
   WHERE jsonb_typeof(d.doc #> '{extra,switchover}') = 'object'
$fn$;
COMMENT ON FUNCTION biha.last_switchover() IS 'The last switchover this node ran as the leader and its outcome (no row: none since its controller started).';

CREATE VIEW biha.status_v AS SELECT * FROM biha.status();
COMMENT ON VIEW biha.status_v IS 'State of every node of the cluster as this node sees it.';
CREATE VIEW biha.nodes_v AS SELECT * FROM biha.nodes();
COMMENT ON VIEW biha.nodes_v IS 'Control-channel connection of this node to every other node.';

---------------------------------------------------------------------------------------------------
-- Changers (biha_cluster_management_role). The default timeout is 30 s for set_leader and 10 s
-- for the others; SET biha.command_timeout_ms overrides it for a session.
---------------------------------------------------------------------------------------------------

CREATE FUNCTION biha.set_leader(id integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_id($1);
  RETURN biha._bool_result(biha._command('set_leader', jsonb_build_object('id', $1), 30000));
END
$fn$;
COMMENT ON FUNCTION biha.set_leader(integer) IS 'Makes node id the leader (switchover).';

CREATE FUNCTION biha.remove_node(id integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_id($1);
  RETURN biha._bool_result(biha._command('remove_node', jsonb_build_object('id', $1), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.remove_node(integer) IS 'Removes node id from the cluster.';

CREATE FUNCTION biha.get_magic_string() RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_result jsonb := biha._command('get_magic_string', '{}'::jsonb, 10000);
BEGIN
  IF jsonb_typeof(v_result) IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'biha: the biha controller returned no magic string' USING ERRCODE = 'protocol_violation';
  END IF;
  RETURN v_result #>> '{}';
END
$fn$;
COMMENT ON FUNCTION biha.get_magic_string() IS 'Magic string for bihactl add (carries the cluster secret).';

CREATE FUNCTION biha.set_heartbeat_max_lost(integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_range('heartbeat_max_lost', $1, 2, 1000);
  RETURN biha._bool_result(biha._command('set_heartbeat_max_lost', jsonb_build_object('value', $1), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_heartbeat_max_lost(integer) IS 'Heartbeats a follower may miss before it acts, on every node.';

CREATE FUNCTION biha.set_heartbeat_send_period(integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_range('heartbeat_send_period', $1, 10, 60000);
  RETURN biha._bool_result(biha._command('set_heartbeat_send_period', jsonb_build_object('value', $1), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_heartbeat_send_period(integer) IS 'Milliseconds between heartbeats, on every node.';

CREATE FUNCTION biha.set_no_wal_on_follower(integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_int('no_wal_on_follower', $1, 0);
  RETURN biha._bool_result(biha._command('set_no_wal_on_follower', jsonb_build_object('value', $1), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_no_wal_on_follower(integer) IS 'Milliseconds a follower may go without WAL from the leader, on every node (0: no limit).';

CREATE FUNCTION biha.set_nquorum_and_minnodes(integer, integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_int('nquorum', $1, 1);
  PERFORM biha._check_int('minnodes', $2, 1);
  RETURN biha._bool_result(biha._command('set_nquorum_and_minnodes',
                                         jsonb_build_object('nquorum', $1, 'minnodes', $2), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_nquorum_and_minnodes(integer, integer) IS 'Votes needed to elect a leader, and live nodes the leader needs to stay writable.';

-- The reference's function with the override of the zero-loss rule of synchronous mode: an
-- overload, so that the reference's signature (and GRANTs naming it) stays exactly as it is.
CREATE FUNCTION biha.set_nquorum_and_minnodes(integer, integer, allow_sync_loss boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_int('nquorum', $1, 1);
  PERFORM biha._check_int('minnodes', $2, 1);
  PERFORM biha._check_bool('allow_sync_loss', $3);
  RETURN biha._bool_result(biha._command('set_nquorum_and_minnodes',
                                         jsonb_build_object('nquorum', $1, 'minnodes', $2, 'allow_sync_loss', $3), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_nquorum_and_minnodes(integer, integer, boolean) IS 'As set_nquorum_and_minnodes(integer, integer); allow_sync_loss => true accepts values that break the zero-loss rule of synchronous mode.';

CREATE FUNCTION biha.reset_node_error() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._command('reset_node_error', '{}'::jsonb, 10000);
END
$fn$;
COMMENT ON FUNCTION biha.reset_node_error() IS 'Leaves the NODE_ERROR state of this node after the cause was repaired.';

CREATE FUNCTION biha.set_sync_standbys(integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_int('sync_standbys', $1, 0);
  RETURN biha._bool_result(biha._command('set_sync_standbys', jsonb_build_object('value', $1), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_sync_standbys(integer) IS 'Number of synchronous followers (0: asynchronous replication).';

CREATE FUNCTION biha.set_sync_standbys(integer, allow_sync_loss boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_int('sync_standbys', $1, 0);
  PERFORM biha._check_bool('allow_sync_loss', $2);
  RETURN biha._bool_result(biha._command('set_sync_standbys', jsonb_build_object('value', $1, 'allow_sync_loss', $2), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_sync_standbys(integer, boolean) IS 'As set_sync_standbys(integer); allow_sync_loss => true accepts a value that breaks the zero-loss rule of synchronous mode.';

CREATE FUNCTION biha.service_mode(boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_bool('service_mode', $1);
  RETURN biha._bool_result(biha._command('service_mode', jsonb_build_object('value', $1), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.service_mode(boolean) IS 'Turns service mode (no automatic elections) on or off.';

CREATE FUNCTION biha.set_can_be_leader(id integer, boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_id($1);
  PERFORM biha._check_bool('can_be_leader', $2);
  RETURN biha._bool_result(biha._command('set_can_be_leader', jsonb_build_object('id', $1, 'value', $2), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_can_be_leader(integer, boolean) IS 'Whether node id may become the leader.';

CREATE FUNCTION biha.set_can_vote(id integer, boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_id($1);
  PERFORM biha._check_bool('can_vote', $2);
  RETURN biha._bool_result(biha._command('set_can_vote', jsonb_build_object('id', $1, 'value', $2), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_can_vote(integer, boolean) IS 'Whether node id votes in elections.';

CREATE FUNCTION biha.set_priority(id integer, integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_id($1);
  PERFORM biha._check_int('priority', $2, 0);
  RETURN biha._bool_result(biha._command('set_priority', jsonb_build_object('id', $1, 'value', $2), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_priority(integer, integer) IS 'Election priority of node id (higher goes first among equally advanced candidates).';

CREATE FUNCTION biha.set_failback(id integer, cron text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM biha._check_id($1);
  IF $2 IS NULL OR btrim($2) = '' THEN
    RAISE EXCEPTION 'biha: cron must be a cron expression such as ''*/5 * * * *'', not %', coalesce(quote_literal($2), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN biha._bool_result(biha._command('set_failback', jsonb_build_object('id', $1, 'cron', $2), 10000));
END
$fn$;
COMMENT ON FUNCTION biha.set_failback(integer, text) IS 'Makes node id the preferred leader: at each tick of the cron expression the leader hands leadership back to it when it is healthy and caught up.';

CREATE FUNCTION biha.reset_failback() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN biha._bool_result(biha._command('reset_failback', '{}'::jsonb, 10000));
END
$fn$;
COMMENT ON FUNCTION biha.reset_failback() IS 'Turns the failback window off (no preferred leader).';

---------------------------------------------------------------------------------------------------
-- Privileges
---------------------------------------------------------------------------------------------------

REVOKE ALL ON TABLE biha.schema_version, biha.status_v, biha.nodes_v FROM PUBLIC;
GRANT SELECT ON TABLE biha.schema_version, biha.status_v, biha.nodes_v TO pg_monitor, biha_cluster_management_role;

REVOKE ALL ON FUNCTION
  biha._status_doc(boolean), biha._command_timeout_ms(integer), biha._command(text, jsonb, integer),
  biha._bool_result(jsonb), biha._check_id(integer), biha._check_int(text, integer, integer),
  biha._check_bool(text, boolean), biha._check_range(text, integer, integer, integer),
  biha.status(), biha.nodes(), biha.config(), biha.error_details(), biha.monitoring(), biha.last_switchover(),
  biha.set_leader(integer), biha.remove_node(integer), biha.get_magic_string(),
  biha.set_heartbeat_max_lost(integer), biha.set_heartbeat_send_period(integer),
  biha.set_no_wal_on_follower(integer), biha.set_nquorum_and_minnodes(integer, integer),
  biha.set_nquorum_and_minnodes(integer, integer, boolean),
  biha.reset_node_error(), biha.set_sync_standbys(integer), biha.set_sync_standbys(integer, boolean),
  biha.service_mode(boolean),
  biha.set_can_be_leader(integer, boolean), biha.set_can_vote(integer, boolean),
  biha.set_priority(integer, integer), biha.set_failback(integer, text), biha.reset_failback()
FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
  biha.status(), biha.nodes(), biha.config(), biha.error_details(), biha.monitoring(), biha.last_switchover()
TO pg_monitor, biha_cluster_management_role;

GRANT EXECUTE ON FUNCTION
  biha.set_leader(integer), biha.remove_node(integer), biha.get_magic_string(),
  biha.set_heartbeat_max_lost(integer), biha.set_heartbeat_send_period(integer),
  biha.set_no_wal_on_follower(integer), biha.set_nquorum_and_minnodes(integer, integer),
  biha.set_nquorum_and_minnodes(integer, integer, boolean),
  biha.reset_node_error(), biha.set_sync_standbys(integer), biha.set_sync_standbys(integer, boolean),
  biha.service_mode(boolean),
  biha.set_can_be_leader(integer, boolean), biha.set_can_vote(integer, boolean),
  biha.set_priority(integer, integer), biha.set_failback(integer, text), biha.reset_failback()
TO biha_cluster_management_role;
