// Questions bihactl asks on a terminal: a password without echo, a yes/no confirmation.
import * as readline from 'node:readline/promises';
import { BihaError } from '../controller/errors.js';

/** Reads a password from the terminal without echo. */
export async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return await new Promise<string>((resolve, reject) => {
    let buf = '';
    stdin.setRawMode?.(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const onData = (ch: string): void => {
      for (const c of ch) {
        if (c === '\r' || c === '\n') {
          cleanup();
          process.stderr.write('\n');
          resolve(buf);
          return;
        }
        if (c === '\u0003') {
          cleanup();
          reject(new BihaError('cancelled', 'cancelled'));
          return;
        }
        if (c === '\u007f') buf = buf.slice(0, -1);
        else buf += c;
      }
    };
    const cleanup = (): void => {
      stdin.setRawMode?.(false);
      stdin.pause();
      stdin.off('data', onData);
    };
    stdin.on('data', onData);
  });
}

/**
 * Asks before a disruptive action. `force` skips the question; without a terminal to ask on, the
 * action is refused unless forced, so that a script never runs one by accident.
 */
export async function confirm(action: string, force: boolean | undefined): Promise<void> {
  if (force) return;
  if (!process.stdin.isTTY)
    throw new BihaError('not_confirmed', `refusing to ${action} without a confirmation, and there is no terminal to ask on`, {
      hint: 'add --force to run it without asking',
    });
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${action}: are you sure? [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new BihaError('cancelled', `${action}: cancelled, nothing was changed`);
  } finally {
    rl.close();
  }
}
