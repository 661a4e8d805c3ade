// One-line renderings of raft messages, Ready batches and soft states for the trace.
import type { ConfigChange, Message, Ready, SoftState } from '../raft/index.js';

export function fmtMsg(m: Message): string {
  const head = `${m.type} t${m.term}`;
  switch (m.type) {
    case 'app':
      return `${head} seq${m.seq} prev${m.prevIndex}/${m.prevTerm} ents${m.entries.length} commit${m.commit}${m.snapshot ? ` snap${m.snapshot.index}` : ''} wal${m.wal.tli}/${m.wal.lsn}`;
    case 'app_resp':
      return `${head} seq${m.seq}${m.reject ? ' reject' : ''} match${m.matchIndex} wal${m.wal.tli}/${m.wal.lsn} ${m.state}`;
    case 'prevote':
    case 'vote':
      return `${head} last${m.lastIndex}/${m.lastTerm} wal${m.wal.tli}/${m.wal.lsn}${m.transfer ? ' transfer' : ''}`;
    case 'prevote_resp':
    case 'vote_resp':
      return `${head} ${m.reject ? `reject ${m.reason ?? ''}` : 'grant'}${m.catchUp ? ' catchup' : ''}`;
    case 'timeout_now':
      return head;
  }
}

export function fmtSoft(s: SoftState): string {
  return `${s.role} t${s.term} L${s.leaderId}${s.writable ? ' rw' : ''} ${s.state}${s.transferTarget ? ` ->${s.transferTarget}` : ''}`;
}

export function fmtReady(rd: Ready): string {
  const parts: string[] = [];
  if (rd.hardState) parts.push(`hs{t${rd.hardState.term} v${rd.hardState.vote} c${rd.hardState.commit}}`);
  if (rd.log) parts.push(`log{snap${rd.log.snapshot.index} +${rd.log.entries.length}}`);
  if (rd.fenceWal) parts.push(`fenceWal{t${rd.fenceWal.term}}`);
  if (rd.messages.length > 0) parts.push(`msgs${rd.messages.length}`);
  if (rd.committed.length > 0) parts.push(`committed[${rd.committed.map((e) => `${e.index}:${e.change ? e.change.type : 'noop'}`).join(',')}]`);
  if (rd.config) parts.push(`config{${rd.config.nodes.map((n) => n.id).join(',')} q${rd.config.params.nquorum} m${rd.config.params.minnodes}}`);
  if (rd.soft) parts.push(`soft{${fmtSoft(rd.soft)}}`);
  return parts.join(' ');
}

export function fmtChange(c: ConfigChange): string {
  switch (c.type) {
    case 'add_node':
      return `add_node ${c.node.id}`;
    case 'remove_node':
      return `remove_node ${c.id}`;
    case 'set_params':
      return `set_params ${Object.entries(c.params).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`;
    case 'set_node':
      return `set_node ${c.id} ${Object.entries(c.patch).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`;
    case 'give_vote':
      return `give_vote ${c.id}`;
    case 'set_meta':
      return `set_meta ${c.key}=${c.value}`;
  }
}
