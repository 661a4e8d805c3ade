// PATCH /config: a subset of the settings becomes the SQL functions' commands, every value checked
// first, errors naming the SQL parameter.
import { describe, expect, it } from 'vitest';
import { parseConfigPatch } from '../../src/controller/configpatch.js';
import type { ClusterSettings } from '../../src/controller/configpatch.js';

const current: ClusterSettings = {
  heartbeat_send_period: 1000,
  heartbeat_max_lost: 10,
  no_wal_on_follower: 20000,
  nquorum: 2,
  minnodes: 2,
  sync_standbys: 0,
  service_mode: false,
};

describe('parseConfigPatch', () => {
  it('maps each setting to its command, in a fixed order', () => {
    expect(parseConfigPatch({ service_mode: true, heartbeat_max_lost: 7, minnodes: 3 }, current)).toEqual([
      { fn: 'set_heartbeat_max_lost', args: { value: 7 } },
      { fn: 'set_nquorum_and_minnodes', args: { nquorum: 2, minnodes: 3, allow_sync_loss: false } },
      { fn: 'service_mode', args: { value: true } },
    ]);
    expect(parseConfigPatch({ sync_standbys: 1, allow_sync_loss: true }, current)).toEqual([{ fn: 'set_sync_standbys', args: { value: 1, allow_sync_loss: true } }]);
  });
  it('names the SQL parameter of a bad value', () => {
    expect(() => parseConfigPatch({ heartbeat_max_lost: 1 }, current)).toThrow(/^heartbeat_max_lost must be an integer between 2 and 1000, not 1$/);
    expect(() => parseConfigPatch({ heartbeat_send_period: '100' }, current)).toThrow(/heartbeat_send_period must be an integer/);
    expect(() => parseConfigPatch({ nquorum: 1.5 }, current)).toThrow(/nquorum must be an integer/);
    expect(() => parseConfigPatch({ service_mode: 'on' }, current)).toThrow(/service_mode must be true or false/);
  });
  it('refuses unknown names and an empty patch', () => {
    expect(() => parseConfigPatch({ heartbeat_maxlost: 3 }, current)).toThrow(/unknown parameter "heartbeat_maxlost"/);
    expect(() => parseConfigPatch({}, current)).toThrow(/nothing to change/);
  });
  it('checks every value before giving any command', () => {
    expect(() => parseConfigPatch({ heartbeat_max_lost: 5, sync_standbys: -1 }, current)).toThrow(/sync_standbys/);
  });
});
