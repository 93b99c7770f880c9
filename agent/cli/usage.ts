// What `stint help`, `stint --help` and `stint <command> --help` print: one table of commands, so the overview and
// each command's own help never disagree.

export interface CommandHelp {
  name: string;
  args: string;
  summary: string;
  /** More words for `stint <command> --help`. */
  details?: string[];
}

export const COMMANDS: readonly CommandHelp[] = [
  { name: 'login', args: '[--server URL] [--issuer URL] [--audience AUD]', summary: 'sign in (opens your browser)' },
  { name: 'logout', args: '', summary: 'sign out and wipe this profile\'s local secrets' },
  { name: 'resources', args: '[--json]', summary: 'what you may request' },
  {
    name: 'request',
    args: '<resource> [--for 30m] [--reason TEXT] [--level read] [--ticket T] [--code 123456] [--no-wait | --wait] [--client|--psql] [--json]',
    summary: 'ask for access; waits for approval, then connects',
    details: [
      'When policy asks you to verify it is you, stint asks for the 6-digit code from your authenticator app',
      '(or takes it from --code). Passkeys work only in the Stint app.',
      '--wait waits for the decision only and prints the request (with --json: {"request": …}); connect later with',
      '`stint connect <resource> --exec …`. Exit codes: 0 approved, 1 refused or failed, 2 usage, 3 denied, expired',
      'or cancelled, 130 stopped (Ctrl+C; the request stays open).',
    ],
  },
  { name: 'grants', args: '[--json]', summary: 'your access, with time left' },
  {
    name: 'connect',
    args: '<resource|grant> [--client|--psql] [--exec COMMAND] [--json]',
    summary: 'open the tunnel for active access and print the client command (psql, mariadb)',
    details: [
      'The grant\'s keys live in the agent that activated it: connect reaches that agent through its socket (see',
      '--agent) and prints the client command (psql, mariadb) that needs no password; --client (or --psql) runs it.',
      '--exec runs COMMAND (with /bin/sh) with the connection in its environment, activating your approved request',
      'first when there is one, then ends the access when COMMAND exits and exits with its code. If the access ends',
      'first, COMMAND is stopped (SIGTERM). The variables, per kind:',
      '  PostgreSQL  PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE           psql -c \'select 1\'',
      '  MariaDB     STINT_MYCNF (option file), MYSQL_HOST, MYSQL_TCP_PORT,   mariadb --defaults-file="$STINT_MYCNF"',
      '              MYSQL_PWD',
      '  SSH host    STINT_SSH_CONFIG (ssh_config), STINT_SSH_HOST (alias)    ssh -F "$STINT_SSH_CONFIG" "$STINT_SSH_HOST" CMD',
    ],
  },
  {
    name: 'resume',
    args: '<grant> [--code 123456] [--client|--psql] [--json]',
    summary: 'take back access left from before (Stint stopped while it was active)',
    details: [
      'New keys from the server for the same grant and end: the old key and password stop working. Then the tunnel',
      'is held like `connect`. `stint grants` lists what was left from before; `stint release` ends it instead.',
      'Where policy asked the request for a step-up, taking it back asks for a fresh one: the code from your',
      'authenticator app (--code, else asked for at the terminal).',
    ],
  },
  { name: 'release', args: '<resource|grant> [--json]', summary: 'end access now' },
  {
    name: 'approvals',
    args: '[--json]',
    summary: 'requests waiting for your approval',
    details: ['Shows who asks, for what, for how long, why, how long ago, and whether approving needs a step-up (a passkey or a one-time code), as the server says.'],
  },
  {
    name: 'approve',
    args: '<request> [--comment TEXT] [--code 123456] [--json]',
    summary: 'approve a request waiting for you',
    details: [
      'When policy asks approvers to verify it is them, stint asks for the 6-digit code from your authenticator app.',
      'Without a terminal to ask on (scripts), pass the code with --code.',
      'When it needs a passkey instead (or a factor you have not set up), stint prints the server\'s approve link, opens',
      'your browser on it and waits until you have decided there.',
    ],
  },
  { name: 'deny', args: '<request> --reason TEXT [--json]', summary: 'deny a request waiting for you (the requester sees the reason)' },
  {
    name: 'reviews',
    args: '[--all] [--json]',
    summary: 'break-glass uses waiting for your review',
    details: ['Every break-glass use asks the resource\'s approvers to review it; --all shows recorded reviews too.'],
  },
  {
    name: 'review',
    args: '<review> --outcome ok|concern [--note TEXT] [--json]',
    summary: 'record your review of a break-glass use (on the audit record)',
    details: ['A concern needs a note saying what it is.'],
  },
  { name: 'help', args: '[command]', summary: 'this text, or one command\'s' },
];

const OPTIONS = `headless (CI jobs, bots): set STINT_SERVER_URL and STINT_CLIENT_ID with STINT_CLIENT_SECRET or
  STINT_CLIENT_SECRET_FILE (client credentials), or STINT_TOKEN_FILE (a workload identity token); STINT_ISSUER and
  STINT_AUDIENCE are read from the server when unset. Nothing is stored; the secret is never printed.

options for every command:
  --profile NAME     which agent profile (default: cli, or $STINT_PROFILE): each has its own sign-in,
                     keychain items and settings, apart from the tray app's
  --config-dir DIR   where the profile's settings live
  --agent SOCKET     drive the running agent listening on SOCKET (a demo user's, the tray app's) instead;
                     without it, a running agent of the profile (e.g. \`stint request\` holding a tunnel in
                     another terminal) is used when there is one
  --json             machine-readable output
  -h, --help         help`;

export function usage(): string {
  const lines = COMMANDS.map((c) => {
    const head = `  ${c.name} ${c.args}`.trimEnd();
    return head.length <= 54 ? `${head.padEnd(56)}${c.summary}` : `${head}\n${' '.repeat(56)}${c.summary}`;
  });
  return `usage: stint <command> [options]\n\n${lines.join('\n')}\n\n${OPTIONS}`;
}

export function commandUsage(name: string): string | undefined {
  const c = COMMANDS.find((x) => x.name === name);
  if (!c) return undefined;
  return [`usage: stint ${c.name} ${c.args}`.trimEnd(), '', `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`, ...(c.details ?? []), '', OPTIONS].join('\n');
}
