// The ports bihactl init/add derive from --port: the control channel beside PostgreSQL, the HTTP
// API at Patroni's distance (8008 for 5432), clear of the one-host layout of several nodes.
import { describe, expect, it } from 'vitest';
import { BihaError } from '../../src/controller/errors.js';
import { HTTP_PORT_OFFSET, defaultHttpPort, defaultPort, distinctPorts } from '../../src/bihactl/util.js';

describe('defaultHttpPort', () => {
  it('is 8008 for PostgreSQL on 5432 and keeps that distance for other ports', () => {
    expect(HTTP_PORT_OFFSET).toBe(2576);
    expect(defaultHttpPort(5432)).toBe(8008);
    expect(defaultHttpPort(5434)).toBe(8010);
    expect(defaultHttpPort(62959)).toBe(65535);
  });

  it('never lands on a port of the other nodes of the one-host example (PostgreSQL 5432 + 2k, biha + 1)', () => {
    const nodes = [0, 1, 2, 3, 4].map((k) => ({ pg: 5432 + 2 * k, biha: 5433 + 2 * k }));
    const taken = new Set(nodes.flatMap((n) => [n.pg, n.biha]));
    const http = nodes.map((n) => defaultHttpPort(n.pg));
    for (const p of http) expect(taken.has(p)).toBe(false);
    expect(new Set(http).size).toBe(http.length);
    for (const n of nodes) distinctPorts({ port: n.pg, 'biha-port': defaultPort('biha-port', n.pg, 1), 'http-port': defaultHttpPort(n.pg) });
  });

  it('a referee derives it from its biha port - 1', () => {
    expect(defaultHttpPort(5437 - 1, 'biha-port')).toBe(8012);
  });

  it('asks for --http-port when the default is not a valid port', () => {
    expect(() => defaultHttpPort(63000)).toThrow('--http-port defaults to --port + 2576 = 65576, which is not a valid port: give --http-port explicitly');
    expect(() => defaultHttpPort(64999, 'biha-port')).toThrow('--http-port defaults to --biha-port + 2575 = 67575, which is not a valid port: give --http-port explicitly');
    let err: unknown = null;
    try {
      defaultHttpPort(65535);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BihaError);
    expect((err as BihaError).code).toBe('bad_args');
  });
});
