// A client loop that writes until it is stopped: connect, write again and again; on any error drop
// the connection, remember the error and reconnect 20 ms later. Bounded by stop() and by maxMs.
import type pg from 'pg';
import { sleep } from './cluster.js';

export class WriteLoop {
  readonly errors: string[] = [];
  private stopFlag = false;
  private done: Promise<void> | null = null;

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    private readonly write: (client: pg.Client) => Promise<void>,
    private readonly maxMs = 300_000,
  ) {}

  start(): void {
    const deadline = Date.now() + this.maxMs;
    this.done = (async () => {
      let client: pg.Client | null = null;
      while (!this.stopFlag && Date.now() < deadline) {
        try {
          client ??= await this.connect();
          await this.write(client);
        } catch (e) {
          this.errors.push(e instanceof Error ? e.message : String(e));
          if (client) await client.end().catch(() => undefined);
          client = null;
          await sleep(20);
        }
      }
      if (client) await client.end().catch(() => undefined);
    })();
  }

  async stop(): Promise<void> {
    this.stopFlag = true;
    await this.done;
  }
}
