// The client endpoints of one node (bihactl init/add --proxy-port, --proxy-ro-port, --vip): one
// place that follows the writable leader and moves the proxies (proxyhost.ts: proxy.ts in a worker
// thread of their own) and the virtual IP (vip.ts) with it.
//
// A leader counts once it is LEADER_RW as raft says (routes from proxyroute.ts) *and* its
// PostgreSQL answers as a primary: raft makes a node LEADER_RW before its promotion ends, and a
// client sent there then would land on a standby. This node's own PostgreSQL is read from the
// driver's last probe; another node's is asked over the control channel (node_state), once per
// leader and term. Until then new connections wait (TcpProxy holds them).
//
// On a new leader: one log line, the read-write sessions to any other node are closed, the held
// connections go on. When there is no writable leader, new read-write connections are held for
// --proxy-hold-ms and then closed. The virtual IP follows the same leader on its own node, and
// is removed as soon as this node stops being LEADER_RW (sync() runs on every raft state change,
// at the moment the lease ends) and at shutdown, before PostgreSQL is stopped.
import type { Logger } from 'pino';
import type { NodeId } from '../../raft/index.js';
import type { ProxyConf } from '../state/nodefiles.js';
import type { Metrics } from './metrics.js';
import { InlineProxies, ThreadProxies } from './proxyhost.js';
import type { Endpoint, ProxyHost, ProxyHostEvents } from './proxyhost.js';
import type { Backend, Routes } from './proxyroute.js';
import { VipHolder } from './vip.js';
import { vipText } from './vipspec.js';

/** How much longer than an election timeout a new connection waits by default (--proxy-hold-ms). */
export const HOLD_MARGIN_MS = 5000;
/** Default --proxy-ro-max-lag: 16 MB (one WAL segment). */
export const DEFAULT_RO_MAX_LAG = 16 * 1024 * 1024;
/** How often the routes are looked at besides raft state changes (a follower learns of a new leader from heartbeats). */
const SYNC_EVERY_MS = 50;
/** Between two questions to a new leader whether its PostgreSQL is a primary yet. */
const ASK_EVERY_MS = 100;

export interface EndpointsDeps {
  readonly conf: ProxyConf;
  readonly selfId: NodeId;
  /** Address the proxies listen on (the HTTP server's). */
  readonly listenHost: string;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** The election timeout now (heartbeat_send_period × heartbeat_max_lost): the default hold is this + HOLD_MARGIN_MS. */
  electionTimeoutMs(): number;
  routes(maxLagBytes: number): Routes;
  /** This node's PostgreSQL runs as a primary (the driver's last probe). */
  selfPrimary(): boolean;
  /** Node `id` is LEADER_RW and its PostgreSQL a primary (asked over the control channel). */
  peerPrimary(id: NodeId): Promise<boolean>;
  /** Run the proxies in this thread instead of a worker thread of their own (tests). */
  readonly inline?: boolean;
}

export class ClientEndpoints {
  private proxies: ProxyHost | null = null;
  private readonly vip: VipHolder | null;
  private routes: Routes = { leader: null, term: 0, readers: [] };
  /** The leader (id and term) routes name now; '' without one. */
  private leaderKey = '';
  /** The leader new connections go to: confirmed a primary. */
  private ready: Backend | null = null;
  /** What the proxies were last told (a JSON text), so that they hear only of changes. */
  private told = '';
  private asking = '';
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly d: EndpointsDeps) {
    const spec = d.conf.vip;
    this.vip = spec ? new VipHolder({ spec, log: d.log, onHeld: (held) => d.metrics.vip(held) }) : null;
  }

  get holdMs(): number {
    return this.d.conf.holdMs ?? this.d.electionTimeoutMs() + HOLD_MARGIN_MS;
  }

  private get maxLag(): number {
    return this.d.conf.roMaxLagBytes ?? DEFAULT_RO_MAX_LAG;
  }

  /** Opens the ports; a port that cannot be opened is logged and left closed. Removes a virtual IP left from before. */
  async start(): Promise<void> {
    const { conf } = this.d;
    const ports: Array<[Endpoint, number]> = [];
    if (conf.port !== undefined) ports.push(['rw', conf.port]);
    if (conf.roPort !== undefined) ports.push(['ro', conf.roPort]);
    if (ports.length > 0) {
      const host = this.d.listenHost;
      this.proxies = this.d.inline ? new InlineProxies(host, this.hostEvents()) : new ThreadProxies(host, this.hostEvents());
      for (const [endpoint, port] of ports) {
        const name = endpoint === 'rw' ? 'read-write' : 'read-only';
        const err = await this.proxies.open(endpoint, port);
        if (err === null) this.d.log.info({ port, endpoint }, `${name} proxy listening on ${host}:${port}`);
        else this.d.log.error({ port, err }, `the ${name} proxy could not listen on port ${port}: ${err}; continuing without it`);
      }
    }
    if (this.vip) {
      this.d.log.info(`virtual IP ${vipText(this.vip.spec)}: held while this node is the writable leader`);
      this.vip.set(false);
    }
    this.timer = setInterval(() => this.sync(), SYNC_EVERY_MS);
    this.timer.unref();
    this.sync();
  }

  private hostEvents(): ProxyHostEvents {
    const { metrics, log } = this.d;
    return {
      accepted: (endpoint) => metrics.proxyAccepted(endpoint),
      open: (endpoint, n) => metrics.proxyOpen(endpoint, n),
      dropped: (endpoint, why) => metrics.proxyDrop(endpoint, why),
      log: (level, msg) => log[level](msg),
    };
  }

  /** Tells the proxies where new connections go, when that changed. */
  private tell(): void {
    if (!this.proxies) return;
    const r = { leader: this.ready, readers: this.ready ? this.routes.readers : [], holdMs: this.holdMs };
    const text = JSON.stringify(r);
    if (text === this.told) return;
    this.told = text;
    this.proxies.routes(r);
  }

  /** Looks at the routes now: called on every raft state change and every SYNC_EVERY_MS. */
  sync(): void {
    if (this.closed) return;
    const r = this.d.routes(this.maxLag);
    this.routes = r;
    const key = r.leader ? `${r.leader.id}/${r.term}` : '';
    if (key !== this.leaderKey) {
      const hadReady = this.ready !== null;
      this.leaderKey = key;
      this.ready = null;
      if (!r.leader && hadReady) this.d.log.info(`proxy: no writable leader; new connections wait up to ${this.holdMs} ms for one`);
    }
    const l = r.leader;
    if (l && !this.ready) {
      if (l.id === this.d.selfId) {
        if (this.d.selfPrimary()) this.confirmed(l, key);
      } else if (this.asking !== key) {
        void this.ask(l, key);
      }
    }
    // The virtual IP goes as soon as this node is no longer the confirmed writable leader.
    this.vip?.set(this.ready !== null && this.ready.id === this.d.selfId);
    this.tell();
  }

  private async ask(l: Backend, key: string): Promise<void> {
    this.asking = key;
    try {
      while (!this.closed && this.leaderKey === key && this.ready === null) {
        if (await this.d.peerPrimary(l.id).catch(() => false)) {
          if (this.leaderKey === key) this.confirmed(l, key);
          return;
        }
        await new Promise((r) => setTimeout(r, ASK_EVERY_MS));
      }
    } finally {
      if (this.asking === key) this.asking = '';
    }
  }

  private confirmed(l: Backend, key: string): void {
    this.ready = l;
    this.d.log.info({ leader: l.id, term: Number(key.split('/')[1]) }, `proxy: new connections go to node ${l.id} (${l.host}:${l.port}), the writable leader`);
    this.proxies?.closeExcept(l.id);
    this.tell();
    this.vip?.set(l.id === this.d.selfId);
  }

  /**
   * This node stops: the virtual IP is removed first (awaited), then the ports close. Called
   * before PostgreSQL is stopped.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.ready = null;
    await this.vip?.release().catch(() => undefined);
    await this.proxies?.close().catch(() => undefined);
  }
}
