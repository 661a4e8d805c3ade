// The multi-host URI parser: host lists with IPv6 literals, ports, percent-encoded user information
// and the parameters biha's clients honour.
import { afterEach, describe, expect, it } from 'vitest';
import { parseMultiHostUri, splitHostList } from '../../src/client/multihost.js';

const saved = { PGPASSWORD: process.env['PGPASSWORD'], PGUSER: process.env['PGUSER'] };
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('splitHostList', () => {
  it('splits names, IPv4 and bracketed IPv6 hosts, with and without ports', () => {
    expect(splitHostList('a:1,10.0.0.2,[::1]:5433,[fe80::1%25eth0],b')).toEqual([
      { host: 'a', port: 1 },
      { host: '10.0.0.2', port: 5432 },
      { host: '::1', port: 5433 },
      { host: 'fe80::1%eth0', port: 5432 },
      { host: 'b', port: 5432 },
    ]);
  });

  it('refuses broken lists', () => {
    expect(() => splitHostList('[::1:5432')).toThrow(/unclosed \[/);
    expect(() => splitHostList('a:x')).toThrow(/bad port "x"/);
    expect(() => splitHostList('a:70000')).toThrow(/bad port/);
    expect(() => splitHostList('a,,b')).toThrow(/empty host/);
    expect(() => splitHostList('[::1]x')).toThrow(/unexpected "x"/);
  });
});

describe('parseMultiHostUri', () => {
  it('reads bracketed IPv6 hosts with their ports', () => {
    const t = parseMultiHostUri('postgresql://u:p@[::1]:5432,[::1]:5433/db');
    expect(t.hosts).toEqual([
      { host: '::1', port: 5432 },
      { host: '::1', port: 5433 },
    ]);
    expect(t).toMatchObject({ user: 'u', password: 'p', database: 'db', targetSessionAttrs: 'any', connectTimeoutMs: 2000 });
  });

  it('reads the URIs bihactl conninfo prints', () => {
    const t = parseMultiHostUri('postgresql://biha_replication_user:pw@127.0.0.1:5432,127.0.0.1:5434/biha_db?target_session_attrs=read-write&connect_timeout=3');
    expect(t.hosts).toEqual([
      { host: '127.0.0.1', port: 5432 },
      { host: '127.0.0.1', port: 5434 },
    ]);
    expect(t).toMatchObject({ user: 'biha_replication_user', password: 'pw', database: 'biha_db', targetSessionAttrs: 'read-write', connectTimeoutMs: 3000 });
  });

  it('decodes percent-encoded user, password and database; defaults from the environment', () => {
    expect(parseMultiHostUri('postgres://us%3Ar:p%40ss%2F@h1,h2:6000/my%20db')).toMatchObject({
      hosts: [
        { host: 'h1', port: 5432 },
        { host: 'h2', port: 6000 },
      ],
      user: 'us:r',
      password: 'p@ss/',
      database: 'my db',
    });
    process.env['PGUSER'] = 'alice';
    process.env['PGPASSWORD'] = 'secret';
    expect(parseMultiHostUri('postgresql://[2001:db8::5]')).toMatchObject({ hosts: [{ host: '2001:db8::5', port: 5432 }], user: 'alice', password: 'secret', database: 'postgres' });
  });

  it('refuses what it cannot use', () => {
    expect(() => parseMultiHostUri('mysql://h/db')).toThrow(/not a postgresql:\/\/ connection URI/);
    expect(() => parseMultiHostUri('postgresql://u@/db')).toThrow(/no host/);
    expect(() => parseMultiHostUri('postgresql://h/db?target_session_attrs=prefer-standby')).toThrow(/unsupported target_session_attrs=prefer-standby/);
  });
});
