// Where the CLI writes and, when there is a terminal, asks: results on stdout, everything for the person (progress,
// prompts, errors) on stderr, answers read from stdin only when it is a TTY.
import { createInterface } from 'node:readline/promises';
import { spawn } from 'node:child_process';
import { CliError } from './explain';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Ask a question and read one line; absent when there is no terminal to ask on (a script, a pipe). */
  ask?: (question: string) => Promise<string>;
  /** Try to open a link in the user's browser (nothing is said; the caller prints the link anyway). */
  open?: (url: string) => void;
}

/** The desktop's opener for a URL; a machine without one (a server, a container) just does not open it. */
export function openUrl(url: string): void {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  spawn(opener, [url], { stdio: 'ignore', detached: true }).on('error', () => undefined).unref();
}

async function askOnTerminal(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const stop = new AbortController();
  rl.once('SIGINT', () => stop.abort());
  rl.once('close', () => stop.abort());
  try {
    return (await rl.question(question, { signal: stop.signal })).trim();
  } catch (error) {
    if (stop.signal.aborted) throw new CliError('Stopped.', 130);
    throw error;
  } finally {
    rl.close();
  }
}

export function terminalIo(): Io {
  return {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    ...(process.stdin.isTTY ? { ask: askOnTerminal } : {}),
    open: openUrl,
  };
}
