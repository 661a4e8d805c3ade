// Inserts every 20 ms through a multi-host read-write connection string and prints the longest
// write gap seen. Usage: node scripts/write-gap.mjs URI SECONDS
import { measureWriteGap, parseMultiHostUri } from '../dist/client/multihost.js';

const [uri, seconds] = process.argv.slice(2);
const r = await measureWriteGap(parseMultiHostUri(uri), { periodMs: 20, seconds: Number(seconds ?? 10), table: 'demo_gap' });
console.log(`client: ${r.ok} inserts acknowledged, ${r.failed} failed; longest write gap ${r.maxGapMs} ms (from ${r.gapFromMs} ms to ${r.gapToMs} ms into the run)`);
