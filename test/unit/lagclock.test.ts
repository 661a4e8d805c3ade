// LagClock: a follower's replay lag in time, from the leader positions its heartbeats carry.
import { describe, expect, it } from 'vitest';
import { LagClock } from '../../src/controller/ops/lagclock.js';

describe('LagClock', () => {
  it('knows nothing before the first heartbeat, nor for another leader', () => {
    const c = new LagClock();
    expect(c.lagMs(1, 100, 0)).toBeNull();
    c.note(1, 100, 0);
    expect(c.lagMs(2, 100, 10)).toBeNull();
    expect(c.lagMs(0, 100, 10)).toBeNull();
    expect(c.lagMs(1, null, 10)).toBeNull();
  });

  it('is 0 while the follower has replayed what the leader last reported, also on an idle cluster', () => {
    const c = new LagClock();
    c.note(1, 100, 0);
    expect(c.lagMs(1, 100, 50)).toBe(0);
    for (let t = 1000; t <= 60_000; t += 1000) c.note(1, 100, t);
    expect(c.lagMs(1, 100, 60_000)).toBe(0);
  });

  it('is the age of the oldest leader position not replayed yet', () => {
    const c = new LagClock();
    c.note(1, 100, 0);
    c.note(1, 200, 1000);
    c.note(1, 300, 2000);
    c.note(1, 300, 3000); // same position: it was first seen at 2000
    expect(c.lagMs(1, 50, 3500)).toBe(3500);
    expect(c.lagMs(1, 150, 3500)).toBe(2500);
    expect(c.lagMs(1, 250, 4000)).toBe(2000);
    // A follower that stops replaying lags more and more.
    expect(c.lagMs(1, 250, 9000)).toBe(7000);
    expect(c.lagMs(1, 300, 9000)).toBe(0);
    c.note(1, 400, 9500);
    expect(c.lagMs(1, 300, 9600)).toBe(100);
  });

  it('starts over for a new leader or a position that went back', () => {
    const c = new LagClock();
    c.note(1, 500, 0);
    c.note(2, 300, 1000);
    expect(c.lagMs(1, 100, 2000)).toBeNull();
    expect(c.lagMs(2, 100, 2000)).toBe(1000);
    c.note(2, 200, 3000);
    expect(c.lagMs(2, 100, 4000)).toBe(1000);
  });

  it('keeps the oldest position when it has too many', () => {
    const c = new LagClock(3);
    for (let i = 1; i <= 10; i++) c.note(1, i * 100, i * 1000);
    expect(c.lagMs(1, 0, 20_000)).toBe(19_000);
    expect(c.lagMs(1, 100, 20_000)).toBe(11_000); // the positions in between were dropped: 900 is next
  });

  it('ignores positions that are not positions', () => {
    const c = new LagClock();
    c.note(1, 0, 0);
    c.note(1, Number.NaN, 0);
    expect(c.lagMs(1, 0, 10)).toBeNull();
  });
});
