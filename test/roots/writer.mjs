// Inserts unique ids, one transaction each, through a multi-host read-write connection string until
// STOPFILE exists (or SECONDS pass). An id is appended to ACKFILE as "id port" only once its commit
// was acknowledged without PostgreSQL's "might not have been replicated" warning (a commit that
// waited for a synchronous standby and was cancelled is not acknowledged).
//   node test/roots/writer.mjs URI ACKFILE STOPFILE SECONDS
import * as fs from 'node:fs';
import { connectMultiHost, parseMultiHostUri } from '../../dist/client/multihost.js';

const [uri, ackFile, stopFile, seconds] = process.argv.slice(2);
if (!uri || !ackFile || !stopFile) {
  process.stderr.write('usage: node test/roots/writer.mjs URI ACKFILE STOPFILE [SECONDS]\n');
  process.exit(2);
}
const target = parseMultiHostUri(uri);
const deadline = Date.now() + Number(seconds ?? 300) * 1000;
const ack = fs.openSync(ackFile, 'a');
let conn = null;
let warned = false;
let next = 1;
let failed = 0;
while (Date.now() < deadline && !fs.existsSync(stopFile)) {
  const started = Date.now();
  try {
    if (!conn) {
      conn = await connectMultiHost(target);
      conn.client.on('notice', (n) => {
        if (/might not have been replicated/.test(`${n.message ?? ''} ${n.detail ?? ''}`)) warned = true;
      });
      conn.client.on('error', () => undefined);
      await conn.client.query('create table if not exists acked (id int primary key, port int)');
    }
    const id = next++;
    warned = false;
    await conn.client.query({ text: 'insert into acked values ($1, $2)', values: [id, conn.port], query_timeout: 5000 });
    if (!warned) fs.writeSync(ack, `${id} ${conn.port}\n`);
  } catch {
    failed++;
    if (conn) await conn.client.end().catch(() => undefined);
    conn = null;
  }
  const wait = 20 - (Date.now() - started);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
if (conn) await conn.client.end().catch(() => undefined);
fs.closeSync(ack);
process.stdout.write(`writer: ${next - 1} inserts tried, ${failed} failed attempts\n`);
