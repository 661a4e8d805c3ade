// The pure parts of the side-by-side benchmark (bench/compare.ts): Patroni's generated YAML and
// the closing markdown table.
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { compareTable, ratio } from '../../bench/lib/comparetable.js';
import type { PatroniNodeOptions } from '../../bench/lib/patroniconf.js';
import { PATRONI_DEFAULTS, PATRONI_FAST, patroniYaml } from '../../bench/lib/patroniconf.js';

const node: PatroniNodeOptions = {
  scope: 'biha-bench',
  name: 'pg2',
  pgPort: 28501,
  restPort: 28511,
  etcd: '127.0.0.1:28503',
  dataDir: '/tmp/patroni-bench-x/pg2/data',
  nodeDir: '/tmp/patroni-bench-x/pg2',
  binDir: '/usr/lib/postgresql/15/bin',
  superuserPassword: 'su: "quoted" #pw',
  replicationPassword: 'repl-pw',
  timing: PATRONI_FAST,
};

type Conf = {
  name: string;
  restapi: { listen: string; connect_address: string };
  etcd3: { hosts: string[] };
  etcd?: unknown;
  bootstrap: { dcs: { ttl: number; loop_wait: number; retry_timeout: number; synchronous_mode?: boolean; postgresql: { use_pg_rewind: boolean } } };
  postgresql: { listen: string; data_dir: string; bin_dir: string; pgpass: string; authentication: { superuser: { username: string; password: string }; replication: { username: string; password: string } }; pg_hba: string[] };
};

describe('patroniYaml', () => {
  it('reads back as the node Patroni should run: its ports on loopback, etcd v3, the timing, pg_rewind, asynchronous', () => {
    const c = load(patroniYaml(node)) as Conf;
    expect(c.name).toBe('pg2');
    expect(c.restapi).toEqual({ listen: '127.0.0.1:28511', connect_address: '127.0.0.1:28511' });
    expect(c.etcd3.hosts).toEqual(['127.0.0.1:28503']);
    expect(c.etcd).toBeUndefined();
    expect(c.bootstrap.dcs).toMatchObject({ ttl: 5, loop_wait: 1, retry_timeout: 2, postgresql: { use_pg_rewind: true } });
    expect(c.bootstrap.dcs.synchronous_mode).toBeUndefined();
    expect(c.postgresql.listen).toBe('127.0.0.1:28501');
    expect(c.postgresql.data_dir).toBe('/tmp/patroni-bench-x/pg2/data');
    expect(c.postgresql.pgpass).toBe('/tmp/patroni-bench-x/pg2/pgpass');
    expect(c.postgresql.pg_hba.every((l) => !/0\.0\.0\.0|::\/0/.test(l))).toBe(true);
  });

  it('keeps passwords with YAML-special characters intact', () => {
    const c = load(patroniYaml(node)) as Conf;
    expect(c.postgresql.authentication.superuser).toEqual({ username: 'postgres', password: 'su: "quoted" #pw' });
    expect(c.postgresql.authentication.replication).toEqual({ username: 'replicator', password: 'repl-pw' });
  });

  it('writes the defaults as Patroni documents them', () => {
    const c = load(patroniYaml({ ...node, timing: PATRONI_DEFAULTS })) as Conf;
    expect(c.bootstrap.dcs).toMatchObject({ ttl: 30, loop_wait: 10, retry_timeout: 10 });
  });
});

describe('compareTable', () => {
  it('prints one markdown line per row with both medians and Patroni / biha', () => {
    const t = compareTable([
      { scenario: 'failover: write gap', biha: [1000, 3000, 2000], patroni: [30_000, 32_000, 31_000] },
      { scenario: 'switchover: write gap', biha: [100, 300], patroni: [450] },
    ]);
    expect(t.split('\n')).toEqual([
      '| scenario | biha | Patroni | Patroni / biha |',
      '|---|---|---|---|',
      '| failover: write gap | 2.00 s (3 runs) | 31.00 s (3 runs) | 15.50 × |',
      '| switchover: write gap | 200 ms (2 runs) | 450 ms (1 run) | 2.25 × |',
    ]);
  });

  it('says so when a tool had no successful run, and gives no ratio then', () => {
    const t = compareTable([{ scenario: 'failover', biha: [], patroni: [5000] }]);
    expect(t).toContain('| failover | no successful run | 5.00 s (1 run) | — |');
    expect(ratio([0], [10])).toBe('—');
    expect(ratio([10], [])).toBe('—');
  });
});
