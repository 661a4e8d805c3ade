// Fixtures for tests of a node's own files (state store, rewind save) without PostgreSQL: a
// temporary directory per test file and one regular node's conf and first state.
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { DEFAULT_PARAMS, bootstrapState } from '../../src/raft/index.js';
import type { NodeInfo } from '../../src/raft/index.js';
import type { NodeConf, NodeState } from '../../src/controller/state/nodefiles.js';

/** A directory made before the file's tests and removed after them; read `.path` inside tests. */
export function tempDirForFile(prefix: string): { path: string } {
  const dir = { path: '' };
  beforeAll(async () => {
    dir.path = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  });
  afterAll(async () => {
    await fsp.rm(dir.path, { recursive: true, force: true });
  });
  return dir;
}

/** Node 1 of a one-node cluster: its NodeInfo, its biha.conf with `secret`, its bootstrap state. */
export function nodeOne(secret: string): { node: NodeInfo; conf: NodeConf; state0: NodeState } {
  const node: NodeInfo = { id: 1, host: '127.0.0.1', port: 5432, bihaPort: 5433, mode: 'regular', canBeLeader: true, canVote: true, priority: 0 };
  const conf: NodeConf = {
    clusterId: 'c1',
    nodeId: 1,
    host: '127.0.0.1',
    port: 5432,
    bihaPort: 5433,
    httpPort: 5434,
    mode: 'regular',
    secrets: [secret],
    seeds: [],
    replicationUser: 'biha_replication_user',
    tls: false,
  };
  return { node, conf, state0: { raft: bootstrapState(node, DEFAULT_PARAMS), nodeError: null } };
}
