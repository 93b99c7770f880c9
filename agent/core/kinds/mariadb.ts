// MariaDB / MySQL: a client option file ([client] host, port, user, password, database) and the `mariadb` command
// that reads only that file, so no password is typed or pasted and nothing in the user's own ~/.my.cnf can send the
// client elsewhere; a mysql:// URI for GUI clients; the command itself opened in a terminal.
import { AgentError } from '../errors';
import type { ClientKind, ClientTarget } from './kind';

/** An option file value: bare when it can be, otherwise double-quoted with \ and " escaped. */
function optionValue(value: string): string {
  return /^[A-Za-z0-9_.@/+-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** The option file the client reads: TCP to the tunnel's local end, as the grant's account, in its database. */
export function optionFile(target: ClientTarget & { password: string }): string {
  return [
    '[client]',
    `host=${optionValue(target.host)}`,
    `port=${target.port}`,
    'protocol=TCP',
    `user=${optionValue(target.user)}`,
    `password=${optionValue(target.password)}`,
    `database=${optionValue(target.database)}`,
    '',
  ].join('\n');
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** What the UI copies and the CLI prints: holds no secret, runs as pasted in a POSIX shell. */
export function mariadbCommand(optionPath: string): string {
  // --defaults-file (not --defaults-extra-file, after which ~/.my.cnf is still read and wins) must come first.
  return `mariadb --defaults-file=${shellQuote(optionPath)}`;
}

export const mariadbClient: ClientKind = {
  async writeClientFiles(files, grantId, target) {
    const optionPath = await files.write(grantId, 'my.cnf', optionFile(target));
    // The client reads no variable for the user or the database: the option file is the whole connection
    // (`mariadb --defaults-file="$STINT_MYCNF"`).
    return { command: mariadbCommand(optionPath), env: { STINT_MYCNF: optionPath } };
  },
  // What the client does read from the environment, for scripts and drivers that take the user and database apart.
  execEnv: (t) => ({ MYSQL_HOST: t.host, MYSQL_TCP_PORT: String(t.port), MYSQL_PWD: t.password }),
  uri: (t) => `mysql://${encodeURIComponent(t.user)}:${encodeURIComponent(t.password)}@${t.host}:${t.port}/${encodeURIComponent(t.database)}`,
  open: async (launcher, _target, command) => {
    if (!command || !launcher.openCommand) throw new AgentError('launcher_failed', 'This Stint host cannot open the mariadb client in a terminal. Copy the connection URI instead.');
    await launcher.openCommand(command);
  },
};
