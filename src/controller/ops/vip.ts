// The virtual IP: an address that the writable leader holds on a network interface (`ip addr add`)
// and announces with gratuitous ARP (`arping -U`, Debian's iputils-arping), so that clients on the
// same network reach the leader at one address whichever node it is. The owner (endpoints.ts)
// says whether this node should hold it; VipHolder converges to that, one `ip` run at a time.
//
// Adding an address needs CAP_NET_ADMIN; the controller runs as the postgres OS user, so the
// capability is given to it (systemd: AmbientCapabilities=CAP_NET_ADMIN). A refusal is logged as
// one line saying so, and retried with a backoff.
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { BihaError } from '../errors.js';
import { ExecError, runProgram, startProgram } from '../exec.js';
import { vipText } from './vipspec.js';
import type { VipSpec } from './vipspec.js';

/** The first of `names` that exists (programs in sbin are not on the postgres user's PATH everywhere). */
function findProgram(base: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    const p = `${dir}/${base}`;
    if (fs.existsSync(p)) return p;
  }
  return base;
}

export interface VipHolderOptions {
  readonly spec: VipSpec;
  readonly log: Logger;
  /** A command that `ip` and `arping` run under, as `ip netns exec NS` (default: none). */
  readonly prefix?: readonly string[];
  /** Called after each change of what the node holds. */
  readonly onHeld?: (held: boolean) => void;
  /** Wait after a failed `ip` run before the next try. */
  readonly retryMs?: number;
}

const IP_TIMEOUT_MS = 10_000;

/** Why `ip` refused, as a line a DBA can act on. */
export function vipFailure(spec: VipSpec, op: 'add' | 'remove', e: unknown): string {
  const text = e instanceof ExecError ? `${e.stderr} ${e.tail}` : e instanceof Error ? e.message : String(e);
  const what = `cannot ${op} the virtual IP ${vipText(spec)}`;
  if (/Operation not permitted|Permission denied/i.test(text))
    return `${what}: ip was refused (operation not permitted): the controller needs the CAP_NET_ADMIN capability (systemd: AmbientCapabilities=CAP_NET_ADMIN in the unit, see docs/operations.md)`;
  if (/Cannot find device|does not exist/i.test(text)) return `${what}: there is no network interface ${spec.iface}: fix --vip-interface`;
  if (e instanceof ExecError && e.failure === 'spawn') return `${what}: cannot run ip: install iproute2`;
  return `${what}: ${e instanceof Error ? e.message : String(e)}`;
}

export class VipHolder {
  /** What the interface has, as far as this holder knows (null: not known yet, as at start). */
  private held: boolean | null = null;
  private want = false;
  private busy: Promise<void> | null = null;
  private retryAt = 0;
  private lastError = '';
  private readonly ip = findProgram('ip');

  constructor(private readonly o: VipHolderOptions) {}

  get spec(): VipSpec {
    return this.o.spec;
  }

  /** Makes the interface hold the address (true) or not (false); returns at once. */
  set(want: boolean): void {
    if (want !== this.want) this.retryAt = 0;
    this.want = want;
    this.kick();
  }

  /** Removes the address and waits for it (shutdown). */
  async release(): Promise<void> {
    this.want = false;
    this.retryAt = 0;
    for (let i = 0; i < 3 && (this.busy || this.held !== false); i++) {
      if (this.busy) await this.busy;
      else this.kick();
      if (this.busy) await this.busy;
    }
  }

  private kick(): void {
    if (this.busy || this.want === this.held || Date.now() < this.retryAt) return;
    this.busy = this.step(this.want).finally(() => {
      this.busy = null;
      this.kick();
    });
  }

  private async step(want: boolean): Promise<void> {
    const { spec } = this.o;
    const cidr = `${spec.address}/${spec.prefix}`;
    try {
      const [file, args] = this.command(this.ip, ['addr', want ? 'add' : 'del', cidr, 'dev', spec.iface]);
      await runProgram(file, args, { timeoutMs: IP_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C' } });
    } catch (e) {
      const text = e instanceof ExecError ? e.stderr : '';
      // Already as wanted: the address exists (add) or is absent (remove).
      const already = want ? /File exists/i.test(text) : /Cannot assign requested address/i.test(text);
      if (!already) {
        this.fail(vipFailure(spec, want ? 'add' : 'remove', e));
        return;
      }
    }
    const was = this.held;
    this.held = want;
    this.retryAt = 0;
    this.lastError = '';
    if (was !== want) {
      if (want || was === true) this.o.log.info({ vip: cidr, iface: spec.iface }, `virtual IP ${vipText(spec)} ${want ? 'added' : 'removed'}`);
      this.o.onHeld?.(want);
    }
    if (want) this.announce();
  }

  private command(file: string, args: readonly string[]): [string, string[]] {
    const p = this.o.prefix ?? [];
    return p.length === 0 ? [file, [...args]] : [p[0]!, [...p.slice(1), file, ...args]];
  }

  /** Gratuitous ARP for the address, so that neighbours update their caches now; in the background. */
  private announce(): void {
    const { spec, log } = this.o;
    const [file, args] = this.command(findProgram('arping'), ['-U', '-c', '3', '-I', spec.iface, spec.address]);
    startProgram(file, args, { timeoutMs: 10_000, env: { ...process.env, LC_ALL: 'C' } }).done.catch((e: unknown) => {
      const missing = e instanceof ExecError && (e.failure === 'spawn' || /No such file|not found/i.test(e.stderr));
      log.warn(
        { vip: spec.address },
        missing
          ? `virtual IP ${vipText(spec)}: arping is not installed (Debian: iputils-arping), so neighbours learn the new holder only when their ARP entry expires`
          : `virtual IP ${vipText(spec)}: the gratuitous ARP failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    });
  }

  private fail(msg: string): void {
    this.retryAt = Date.now() + (this.o.retryMs ?? 2000);
    if (msg !== this.lastError) this.o.log.error(msg);
    this.lastError = msg;
    setTimeout(() => this.kick(), this.o.retryMs ?? 2000).unref();
  }
}
