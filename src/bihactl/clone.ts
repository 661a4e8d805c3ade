// Copying a data node from the leader and making the copy this node's: shared by bihactl add and
// bihactl reinit.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { setAutoConfOffline, writeBihaConf } from '../controller/pg/conf.js';
import { describeRaised } from '../controller/pg/settings.js';
import { basebackup, chownToRunAs, dataChecksumsOn, writeStandbySignal } from '../controller/pg/tools.js';
import type { PgEnv } from '../controller/pg/tools.js';
import { REPLICATION_USER } from './init.js';
import { info, progressBar } from './util.js';

export interface CopySource {
  host: string;
  port: number;
  /** The replication user's password, or a password file holding it. */
  password?: string;
  passfile?: string;
  /** The directory to copy into: empty. */
  pgdata: string;
  slot: string;
}

/** Removes everything inside dir, not dir itself (it may be a mount point). */
export async function emptyDir(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) await fsp.rm(path.join(dir, name), { recursive: true, force: true });
}

/**
 * pg_basebackup from the leader through the node's slot, with a progress bar. The leader may
 * restart or promote its PostgreSQL during the copy (it becomes writable as nodes join); such a
 * copy is refused by PostgreSQL and is taken again, up to 5 times.
 */
export async function copyFromLeader(env: PgEnv, o: CopySource): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const bar = progressBar('pg_basebackup');
    try {
      await basebackup(env, {
        host: o.host,
        port: o.port,
        user: REPLICATION_USER,
        ...(o.password !== undefined ? { password: o.password } : {}),
        ...(o.passfile !== undefined ? { passfile: o.passfile } : {}),
        pgdata: o.pgdata,
        slot: o.slot,
        onProgress: (p) => bar.update(p.pct, p.doneKb, p.totalKb),
      });
      bar.done();
      return;
    } catch (e) {
      bar.done();
      const msg = e instanceof Error ? e.message : String(e);
      const transient =
        /promoted during online backup|could not connect|connection|terminating|shutting down|starting up/i.test(msg) &&
        !/authentication failed|no password supplied|does not exist/i.test(msg);
      if (!transient || attempt >= 5) throw e;
      info(`the copy was interrupted (${msg.split('|')[0]!.trim()}); taking it again (attempt ${attempt + 1} of 5)`);
      await emptyDir(o.pgdata);
      await chownToRunAs(env, o.pgdata);
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

/**
 * The copy carries the leader's postgresql.biha.conf and recovery settings: give it this node's
 * own (postgresql.biha.conf, no primary_conninfo until the controller sets it) and make it a standby.
 * With a configuration directory outside the data directory (n.configDir) biha's files go there;
 * only postgresql.auto.conf, which PostgreSQL reads from the data directory, is the copy's.
 */
export async function makeOwnStandby(
  env: PgEnv,
  pgdata: string,
  n: { nodeId: number; host: string; port: number; bihaPort: number; configDir?: string | null | undefined },
): Promise<void> {
  const plan = await writeBihaConf(pgdata, {
    listenAddresses: '*', port: n.port, nodeId: n.nodeId, host: n.host, bihaPort: n.bihaPort, syncStandbyNames: '', autorewind: false,
    dataChecksums: await dataChecksumsOn(env, pgdata),
  }, n.configDir ?? null);
  for (const r of plan.raised) info(describeRaised(r));
  await setAutoConfOffline(pgdata, { primary_conninfo: '', primary_slot_name: '', synchronous_standby_names: null });
  await writeStandbySignal(env, pgdata);
}
