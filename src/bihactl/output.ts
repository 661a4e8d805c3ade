// What bihactl prints: a command's result (a line for a human, or with --json one JSON document on
// stdout) and its failure (one `bihactl: ...` line on stderr, or with --json `{"error","code"}` on
// stdout), whichever part raised it: a command, a node, or the option parser.
import type { CommanderError } from 'commander';
import { BihaError, oneLine } from '../controller/errors.js';
import type { ExitCode } from '../controller/errors.js';
import { errorCodeOf, exitCodeOf } from './exitcodes.js';

export interface JsonOpt {
  json?: boolean;
}

/** Writes a command's one JSON document (with --json). */
export function printJson(doc: unknown): void {
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
}

/**
 * The result of a command that changes something: `message` as a `bihactl:` line on stderr, or
 * with --json the document `{...fields, "message": message}` on stdout.
 */
export function done(o: JsonOpt, message: string, fields: Record<string, unknown> = {}): void {
  if (o.json) printJson({ ...fields, message });
  else process.stderr.write(`bihactl: ${message}\n`);
}

/** Whether the command line asks for JSON (also when the parser rejected it before any action ran). */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/** The failure of an option-parser error, as a BihaError with code `usage`. */
export function usageError(e: CommanderError, commandName: string | null): BihaError {
  // Without a command commander prints the help on stderr and throws 'commander.help'.
  const text = e.code === 'commander.help' ? 'give a command' : oneLine(e.message).replace(/^error:\s*/, '');
  const help = commandName ? `bihactl ${commandName} --help` : 'bihactl --help';
  return new BihaError('usage', text, { hint: `see ${help}` });
}

/** Whether a parser outcome is a success (help or version printed). */
export function isParserSuccess(e: CommanderError): boolean {
  return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0;
}

/** Prints a failure the way the command line asked for; returns the exit code. */
export function reportFailure(e: unknown, json: boolean): ExitCode {
  if (json) printJson({ error: oneLine(e), code: errorCodeOf(e) });
  else process.stderr.write(`bihactl: ${oneLine(e)}\n`);
  return exitCodeOf(e);
}
