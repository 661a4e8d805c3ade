// Switchover and service mode from the page, through the node's remote management API
// (POST /switchover, PATCH /config) with its HTTP basic credentials, each after a confirmation.
// The credentials stay in this page's memory only.
import type { DashView } from '../controller/ops/dashboard/wire.js';
import { byId } from './dom.js';
import { basicAuth } from './format.js';

export interface ActionResult {
  ok: boolean;
  text: string;
}

/** What an answer of the remote management API means, in one line. */
export function describeAnswer(status: number, body: unknown, done: string): ActionResult {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const said = typeof b['message'] === 'string' ? b['message'] : typeof b['error'] === 'string' ? b['error'] : typeof b['reason'] === 'string' ? b['reason'] : '';
  switch (status) {
    case 200:
    case 202:
      return { ok: true, text: said || done };
    case 401:
      return { ok: false, text: 'wrong or missing credentials (401): enter the HTTP user and password set with bihactl' };
    case 403:
      return { ok: false, text: `refused (403): ${said || 'remote management is off on this node'}` };
    case 404:
    case 405:
      return { ok: false, text: `this node does not offer the remote management API (${status})` };
    case 412:
      return { ok: false, text: `the leader changed meanwhile (412): ${said || 'check the page and try again'}` };
    default:
      return { ok: false, text: `failed (${status})${said ? `: ${said}` : ''}` };
  }
}

/** Asks the user in the page's modal dialog; true when confirmed. */
function confirmAction(text: string, confirmLabel: string): Promise<boolean> {
  const dialog = byId<HTMLDialogElement>('confirm');
  byId('confirm-text').textContent = text;
  const ok = byId<HTMLButtonElement>('confirm-ok');
  const cancel = byId<HTMLButtonElement>('confirm-cancel');
  ok.textContent = confirmLabel;
  return new Promise((resolve) => {
    const finish = (answer: boolean): void => {
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onOk = (): void => finish(true);
    const onCancel = (): void => finish(false);
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    cancel.focus();
  });
}

export class Actions {
  private view: DashView | null = null;
  private busy = false;

  constructor() {
    byId<HTMLButtonElement>('service-mode').addEventListener('click', () => void this.toggleServiceMode());
  }

  show(v: DashView): void {
    this.view = v;
    const b = byId<HTMLButtonElement>('service-mode');
    b.textContent = v.service_mode ? 'Turn service mode off' : 'Turn service mode on';
    b.dataset['serviceMode'] = String(v.service_mode);
  }

  async switchover(candidate: number): Promise<void> {
    const v = this.view;
    if (!v) return;
    const leader = v.leader_id;
    const from = leader === null ? 'the current leader' : `node ${leader}`;
    const text = `Switch the leader over from ${from} to node ${candidate}? Sessions on ${from} are disconnected and writes pause until node ${candidate} is promoted.`;
    await this.run(text, 'Switch over', '/switchover', 'POST', { candidate, ...(leader !== null ? { leader } : {}) }, `switched over to node ${candidate}`);
  }

  async toggleServiceMode(): Promise<void> {
    const v = this.view;
    if (!v) return;
    const on = !v.service_mode;
    const text = on
      ? 'Turn service mode on? The cluster then makes no automatic failover until it is turned off.'
      : 'Turn service mode off? Automatic failover resumes.';
    await this.run(text, on ? 'Turn on' : 'Turn off', '/config', 'PATCH', { service_mode: on }, `service mode ${on ? 'on' : 'off'}`);
  }

  private credentials(): string | null {
    const user = byId<HTMLInputElement>('http-user').value;
    const password = byId<HTMLInputElement>('http-password').value;
    return user === '' ? null : basicAuth(user, password);
  }

  private say(r: ActionResult): void {
    const out = byId('action-result');
    out.textContent = r.text;
    out.dataset['ok'] = String(r.ok);
  }

  private async run(question: string, label: string, path: string, method: string, body: unknown, done: string): Promise<void> {
    if (this.busy) return;
    const auth = this.credentials();
    if (auth === null) {
      this.say({ ok: false, text: 'enter the HTTP user and password of the remote management API first' });
      byId<HTMLInputElement>('http-user').focus();
      return;
    }
    if (!(await confirmAction(question, label))) return;
    this.busy = true;
    this.say({ ok: true, text: `${method} ${path} …` });
    try {
      // credentials 'omit': the page's own Authorization header only; a 401 then comes back to
      // the page instead of opening the browser's login prompt, and no browser-cached login is used.
      const r = await fetch(path, { method, credentials: 'omit', headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body), cache: 'no-store' });
      const text = await r.text();
      let parsed: unknown = null;
      try {
        parsed = text === '' ? null : JSON.parse(text);
      } catch {
        parsed = { error: text.slice(0, 200) };
      }
      this.say(describeAnswer(r.status, parsed, done));
    } catch (e) {
      this.say({ ok: false, text: `the node did not answer: ${e instanceof Error ? e.message : String(e)}` });
    } finally {
      this.busy = false;
    }
  }
}
