// The YAML configuration of one Patroni 3.0.x node of a benchmark cluster on loopback: etcd v3
// (the `etcd3:` section), asynchronous replication, pg_rewind for a rejoining old leader.
import { dump } from 'js-yaml';

/** Patroni's leader-election timing (the DCS settings ttl, loop_wait, retry_timeout), seconds. */
export interface PatroniTiming {
  ttl: number;
  loopWait: number;
  retryTimeout: number;
}

/** Patroni's defaults (patroni/config.py). */
export const PATRONI_DEFAULTS: PatroniTiming = { ttl: 30, loopWait: 10, retryTimeout: 10 };

/**
 * The lowest timing Patroni 3.0.2 is run with here: it checks only that the values are integers,
 * and its documentation asks for ttl >= loop_wait + 2 × retry_timeout.
 */
export const PATRONI_FAST: PatroniTiming = { ttl: 5, loopWait: 1, retryTimeout: 2 };

export interface PatroniNodeOptions {
  scope: string;
  name: string;
  /** PostgreSQL port and Patroni REST API port, on 127.0.0.1. */
  pgPort: number;
  restPort: number;
  /** host:port of etcd's client URL. */
  etcd: string;
  dataDir: string;
  /** Directory for the node's unix socket and pgpass file. */
  nodeDir: string;
  binDir: string;
  superuserPassword: string;
  replicationPassword: string;
  timing: PatroniTiming;
}

/** The configuration as an object (what the YAML file says). */
export function patroniConfig(o: PatroniNodeOptions): Record<string, unknown> {
  return {
    scope: o.scope,
    namespace: '/biha-bench/',
    name: o.name,
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${o.restPort}`, connect_address: `127.0.0.1:${o.restPort}` },
    etcd3: { hosts: [o.etcd] },
    bootstrap: {
      dcs: {
        ttl: o.timing.ttl,
        loop_wait: o.timing.loopWait,
        retry_timeout: o.timing.retryTimeout,
        maximum_lag_on_failover: 1048576,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: { wal_level: 'replica', hot_standby: 'on', wal_log_hints: 'on', max_wal_senders: 10, max_replication_slots: 10, wal_keep_size: '128MB' },
        },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
    },
    postgresql: {
      listen: `127.0.0.1:${o.pgPort}`,
      connect_address: `127.0.0.1:${o.pgPort}`,
      data_dir: o.dataDir,
      bin_dir: o.binDir,
      pgpass: `${o.nodeDir}/pgpass`,
      authentication: {
        superuser: { username: 'postgres', password: o.superuserPassword },
        replication: { username: 'replicator', password: o.replicationPassword },
      },
      parameters: { unix_socket_directories: o.nodeDir },
      pg_hba: [
        'local all all trust',
        'host replication replicator 127.0.0.1/32 scram-sha-256',
        'host all all 127.0.0.1/32 scram-sha-256',
      ],
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
}

/** The YAML file Patroni reads. */
export function patroniYaml(o: PatroniNodeOptions): string {
  return dump(patroniConfig(o), { lineWidth: -1, noRefs: true });
}
