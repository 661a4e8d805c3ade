// A follower's replay lag in time, as the follower itself can know it, without asking the leader.
//
// Every heartbeat from the leader carries the leader's WAL position. The follower notes each new
// position with the (monotonic) time it arrived; its lag is then the age of the oldest noted
// position it has not replayed yet, and 0 once it has replayed the newest one. This is what
// pg_stat_replication.replay_lag measures on the primary, with the heartbeat period as resolution:
// an idle cluster shows 0 (unlike now() - pg_last_xact_replay_timestamp(), which grows while no
// transaction commits), and a follower that stops replaying shows a lag that grows with the clock.

/** At most this many positions are kept; the oldest one always stays (it is what the lag is measured from). */
export const LAG_CLOCK_MAX_SAMPLES = 4096;

interface Sample {
  readonly lsn: number;
  readonly atMs: number;
}

export class LagClock {
  private leader = 0;
  private samples: Sample[] = [];

  constructor(private readonly maxSamples: number = LAG_CLOCK_MAX_SAMPLES) {}

  /** A heartbeat from `leader` said its WAL is at `lsn`, received at `atMs`. */
  note(leader: number, lsn: number, atMs: number): void {
    if (!Number.isFinite(lsn) || lsn <= 0) return;
    const last = this.samples.at(-1);
    // Another leader, or the same one on an older position (a rewound or re-copied node): start over.
    if (leader !== this.leader || (last !== undefined && lsn < last.lsn)) {
      this.leader = leader;
      this.samples = [];
    } else if (last !== undefined && lsn === last.lsn) {
      return; // keep the time the position was first seen
    }
    this.samples.push({ lsn, atMs });
    if (this.samples.length > this.maxSamples) this.samples.splice(1, 1);
  }

  /**
   * Milliseconds this node's replay is behind `leader` at `nowMs`, given its replay position:
   * null when that leader's heartbeats were never noted or the position is unknown. Positions
   * replayed are forgotten.
   */
  lagMs(leader: number, replayed: number | null, nowMs: number): number | null {
    if (leader === 0 || leader !== this.leader || replayed === null || !Number.isFinite(replayed)) return null;
    if (this.samples.length === 0) return null;
    const pending = this.samples.findIndex((s) => s.lsn > replayed);
    if (pending < 0) {
      // Keep the newest position: the next heartbeat at the same position is no news.
      this.samples = this.samples.slice(-1);
      return 0;
    }
    if (pending > 0) this.samples = this.samples.slice(pending);
    return Math.max(0, nowMs - (this.samples[0]?.atMs ?? nowMs));
  }
}
