import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultSocketDir, localSocketDir } from '../../src/controller/pg/conn.js';

let dir = '';
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'biha-sockdir-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** postmaster.pid as PostgreSQL 15 writes it: pid, datadir, start, port, socket dir, listen, shmem, status. */
async function pidFile(pgdata: string, socketLine: string): Promise<void> {
  await fsp.mkdir(pgdata, { recursive: true });
  await fsp.writeFile(path.join(pgdata, 'postmaster.pid'), [String(process.pid), pgdata, '1700000000', '5432', socketLine, '*', '  1234   5678', 'ready   ', ''].join('\n'));
}

describe('localSocketDir', () => {
  it('uses the socket directory the running server wrote to postmaster.pid', async () => {
    const pg = path.join(dir, 'a');
    await pidFile(pg, '/run/custom-sockets');
    expect(await localSocketDir({ pgdata: pg })).toBe('/run/custom-sockets');
  });

  it('resolves a relative socket directory against the data directory', async () => {
    const pg = path.join(dir, 'b');
    await pidFile(pg, 'sock');
    expect(await localSocketDir({ pgdata: pg })).toBe(path.join(pg, 'sock'));
  });

  it('falls back to the build default without a server or without a unix socket, and a fixed directory wins', async () => {
    const none = path.join(dir, 'none');
    expect(await localSocketDir({ pgdata: none })).toBe(defaultSocketDir());
    const tcpOnly = path.join(dir, 'c');
    await pidFile(tcpOnly, '');
    expect(await localSocketDir({ pgdata: tcpOnly })).toBe(defaultSocketDir());
    expect(await localSocketDir({ pgdata: tcpOnly, socketDir: '/x' })).toBe('/x');
  });
});
