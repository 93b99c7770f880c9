// PostgreSQL: a libpq passfile (libpq ignores one that group or others can read) and the psql command that names
// it, so no password is typed or pasted; a postgres:// URI for GUI clients; psql opened with PGPASSWORD (launcher.ts).
import type { ClientKind, ClientTarget } from './kind';

/** One line of a libpq password file: fields separated by ':', with ':' and '\' escaped. */
export function pgpassLine(entry: ClientTarget & { password: string }): string {
  const field = (value: string) => value.replace(/[\\:]/g, (c) => `\\${c}`);
  return `${[entry.host, String(entry.port), entry.database, entry.user, entry.password].map(field).join(':')}\n`;
}

/** A libpq connection-string value: bare when it can be, otherwise single-quoted with ' and \ escaped. */
function conninfoValue(value: string): string {
  return /^[A-Za-z0-9_.@/+-]+$/.test(value) ? value : `'${value.replace(/['\\]/g, (c) => `\\${c}`)}'`;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The psql command that connects through the tunnel with the password from `passfile`: what the UI copies and the CLI
 * prints. Safe to show and to put on a clipboard (it holds no secret) and to paste into any POSIX shell.
 */
export function psqlCommand(target: ClientTarget, passfile: string): string {
  const conninfo = [
    `host=${conninfoValue(target.host)}`,
    `port=${target.port}`,
    `dbname=${conninfoValue(target.database)}`,
    `user=${conninfoValue(target.user)}`,
    `passfile=${conninfoValue(passfile)}`,
  ].join(' ');
  return `psql ${shellQuote(conninfo)}`;
}

export const postgresClient: ClientKind = {
  async writeClientFiles(files, grantId, target) {
    return { command: psqlCommand(target, await files.write(grantId, 'pgpass', pgpassLine(target))), env: {} };
  },
  // libpq's own variables: psql, pg_dump and most drivers read them.
  execEnv: (t) => ({ PGHOST: t.host, PGPORT: String(t.port), PGUSER: t.user, PGPASSWORD: t.password, PGDATABASE: t.database }),
  uri: (t) => `postgres://${encodeURIComponent(t.user)}:${encodeURIComponent(t.password)}@${t.host}:${t.port}/${encodeURIComponent(t.database)}`,
  open: (launcher, target) => launcher.openPsql(target),
};
