// What bihactl reinit keeps of a data directory: the node's own files, not PostgreSQL's data.
import { describe, expect, it } from 'vitest';
import { isNodeOwnEntry, reinitSaveDir } from '../../src/bihactl/reinit.js';

describe('reinit: the node-own entries of a data directory', () => {
  it("keeps pg_biha, the configuration files, included files and certificates", () => {
    for (const n of ['pg_biha', 'postgresql.conf', 'postgresql.auto.conf', 'postgresql.biha.conf', 'pg_hba.conf', 'pg_ident.conf', 'conf.d', 'dba-local.conf', 'server.crt', 'server.key'])
      expect(isNodeOwnEntry(n), n).toBe(true);
  });

  it("leaves PostgreSQL's data, runtime and recovery files to the copy", () => {
    for (const n of ['PG_VERSION', 'base', 'global', 'pg_wal', 'pg_xact', 'pg_replslot', 'pg_tblspc', 'pg_logical', 'postmaster.pid', 'postmaster.opts', 'backup_label', 'backup_label.old', 'backup_manifest', 'tablespace_map', 'standby.signal', 'recovery.signal', 'current_logfiles', 'log', 'rewind.signal'])
      expect(isNodeOwnEntry(n), n).toBe(false);
  });

  it('saves the identity beside the data directory', () => {
    expect(reinitSaveDir('/var/lib/pg/main/')).toBe('/var/lib/pg/main.biha-reinit');
  });
});
