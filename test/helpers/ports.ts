// Port blocks for tests that start real servers on loopback. Each suite names where it would like
// its ports (a hint); the block it gets is the first one from there on where nothing listens (read
// from /proc/net/tcp and tcp6) and no other test process, of this run or of another run on the
// same machine, holds a claim. A claim is a file per port in a shared directory, created
// exclusively and naming the claiming process; a claim whose process is gone is taken over. Claims
// are given back when the block is released or the process exits.
import * as fs from 'node:fs';
import * as path from 'node:path';

const CLAIMS = path.join('/tmp', 'biha-test-ports');
/** How far past its hint a block may move before the claim gives up. */
const MAX_MOVES = 200;

const held = new Set<number>();
let exitHook = false;

/** Local TCP ports in LISTEN state (IPv4 and IPv6). */
function listeningPorts(): Set<number> {
  const out = new Set<number>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== '0A') continue; // TCP_LISTEN
      const port = parseInt(cols[1]?.split(':').pop() ?? '', 16);
      if (Number.isInteger(port)) out.add(port);
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Claims one port; false when another live process holds it. */
function claimOne(port: number): boolean {
  const file = path.join(CLAIMS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      held.add(port);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(fs.readFileSync(file, 'utf8').trim());
      if (owner === process.pid || (Number.isInteger(owner) && owner > 0 && alive(owner))) return false;
      fs.rmSync(file, { force: true }); // left by a process that is gone
    }
  }
  return false;
}

/** Gives back the claims on `ports` (those this process holds). */
export function releasePorts(ports: Iterable<number>): void {
  for (const p of ports) {
    if (!held.delete(p)) continue;
    fs.rmSync(path.join(CLAIMS, String(p)), { force: true });
  }
}

/**
 * Claims `count` consecutive ports starting at `hint` or, when one of them is in use or claimed,
 * at the next block of `count` ports, and so on. Returns the first port of the block.
 */
export function claimPorts(hint: number, count: number): number {
  fs.mkdirSync(CLAIMS, { recursive: true, mode: 0o1777 });
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => releasePorts([...held]));
  }
  for (let move = 0; move < MAX_MOVES; move++) {
    const base = hint + move * count;
    if (base + count > 65535) break;
    const busy = listeningPorts();
    const block = Array.from({ length: count }, (_, k) => base + k);
    if (block.some((p) => busy.has(p))) continue;
    const got: number[] = [];
    for (const p of block) {
      if (!claimOne(p)) break;
      got.push(p);
    }
    if (got.length === count) return base;
    releasePorts(got);
  }
  throw new Error(`no free block of ${count} ports from ${hint} on (see ${CLAIMS} for claims held by other test processes)`);
}
