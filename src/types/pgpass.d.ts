// The part of pgpass 1 biha uses (the package ships no type declarations): its line parser and
// matcher, which follow libpq's rules for the password file.
declare module 'pgpass/lib/helper.js' {
  export interface PgpassConnInfo {
    host: string;
    port: number | string;
    database: string;
    user: string;
  }
  export interface PgpassEntry extends PgpassConnInfo {
    password: string;
  }
  /** PGPASSFILE, else $HOME/.pgpass (from `env`, default process.env). */
  export function getFileName(env?: NodeJS.ProcessEnv): string;
  /** One line's five fields, de-escaped; null for a comment or a line that is not one. */
  export function parseLine(line: string): PgpassEntry | null;
  export function isValidEntry(entry: PgpassEntry): boolean;
  /** Every field of the entry but the password equals the connection's, or is `*`. */
  export function match(connInfo: PgpassConnInfo, entry: PgpassEntry): boolean;
  const helper: {
    getFileName: typeof getFileName;
    parseLine: typeof parseLine;
    isValidEntry: typeof isValidEntry;
    match: typeof match;
  };
  export default helper;
}
