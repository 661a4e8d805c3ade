// bihactl fsm: the node controller's transition table, as NC runs it (driver/nc.ts), the way
// pg_autoctl do fsm list prints its state machine.
import { fsmTable } from '../controller/driver/nc.js';

export function cmdFsm(o: { json?: boolean }): void {
  const rows = fsmTable();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const head = { from: 'PostgreSQL is', to: 'raft wants', when: 'when', action: 'NC does' };
  const all = [head, ...rows];
  const w = (k: keyof typeof head): number => Math.max(...all.map((r) => r[k].length));
  const line = (r: typeof head): string => `${r.from.padEnd(w('from'))}  ${r.to.padEnd(w('to'))}  ${r.when.padEnd(w('when'))}  ${r.action}`;
  process.stdout.write(`${line(head)}\n${'-'.repeat(line(head).length)}\n${rows.map(line).join('\n')}\n`);
}
