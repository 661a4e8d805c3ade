import { TestCluster } from '../helpers/cluster.js';
import { spawnSync } from 'node:child_process';
const c = new TestCluster({ nodes: 3, basePort: 19100 });
const t0 = Date.now();
const q = (i: number, ...cmds: string[]) => { const r = spawnSync('runuser', ['-u', 'postgres', '--', '/usr/lib/postgresql/15/bin/psql', '-X', '-h', '/tmp', '-p', String(c.port(i)), '-d', 'biha_db', ...cmds.flatMap((x) => ['-c', x])], { encoding: 'utf8' }); console.log(`--- node ${i}\n${r.stdout}${r.stderr}`); };
try {
  await c.create();
  console.log('created in', Date.now() - t0, 'dir', c.dir);
  for (const i of c.ids()) await c.waitState(i, i === 1 ? 'LEADER_RW' : 'FOLLOWER');
  for (const i of c.ids()) q(i, '\\set SHOW_CONTEXT never', 'select * from biha.status_v', 'select * from biha.nodes_v', 'select * from biha.config()', 'select * from biha.monitoring()', 'select * from biha.error_details()', 'select biha.set_leader(9)', 'select biha.set_heartbeat_max_lost(1)', 'select biha.remove_node(1)', 'select biha.remove_node(9)', 'select biha.set_priority(9,1)', 'select left(biha.get_magic_string(), 6)', 'select * from biha.schema_version');
  q(2, 'select biha.set_leader(2)', 'select pg_is_in_recovery()', 'select * from biha.status_v');
  for (const i of c.ids()) q(i, 'select * from biha.status_v');
  q(2, 'select biha.set_heartbeat_max_lost(7)', 'select * from biha.config()');
  for (const i of c.ids()) q(i, 'select * from biha.config()');
} catch (e) { console.log(String(e)); }
finally {
  await new Promise((r) => setTimeout(r, 1000));
  await c.destroy();
}
