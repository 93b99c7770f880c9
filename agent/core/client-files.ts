// Per-grant files that let ordinary database clients connect with no password typed or pasted: a libpq passfile
// (0600, in a 0700 folder of the agent's own data dir) that the psql command the UI copies points at. The password
// is on disk only while the grant's tunnel is open: wiped with the grant's other secrets at its end, and on start any
// left by a crashed run are removed before anything else happens.
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface PgpassEntry {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

/** One line of a libpq password file: fields separated by ':', with ':' and '\' escaped. */
export function pgpassLine(entry: PgpassEntry): string {
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
export function psqlCommand(target: Omit<PgpassEntry, 'password'>, passfile: string): string {
  const conninfo = [
    `host=${conninfoValue(target.host)}`,
    `port=${target.port}`,
    `dbname=${conninfoValue(target.database)}`,
    `user=${conninfoValue(target.user)}`,
    `passfile=${conninfoValue(passfile)}`,
  ].join(' ');
  return `psql ${shellQuote(conninfo)}`;
}

export class ClientFiles {
  constructor(private readonly dir: string) {}

  private grantDir(grantId: string): string {
    // Grant ids are server-made; refuse anything that could step outside our folder.
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(grantId) || /^\.+$/.test(grantId)) throw new Error(`unexpected grant id ${JSON.stringify(grantId)}`);
    return join(this.dir, grantId);
  }

  /** Write the grant's passfile and return its path. */
  async writePgpass(grantId: string, entry: PgpassEntry): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const dir = this.grantDir(grantId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, 'pgpass');
    // libpq ignores a passfile that group or others can read.
    await writeFile(path, pgpassLine(entry), { mode: 0o600 });
    await chmod(path, 0o600);
    return path;
  }

  async wipe(grantId: string): Promise<void> {
    await rm(this.grantDir(grantId), { recursive: true, force: true });
  }

  /** Remove every grant's files: on start, when this process holds no grant yet. */
  async wipeAll(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
