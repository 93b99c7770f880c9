// The one file that knows about keytar (archived upstream): swapping to @napi-rs/keyring or Electron safeStorage
// means replacing this file only. Every failure becomes a typed AgentError; nothing ever falls back to a file.
import { createRequire } from 'node:module';
import { AgentError } from '../errors';
import type { SecretStore } from './secret-store';

type Keytar = typeof import('keytar');

let loaded: Keytar | undefined;
function keytar(): Keytar {
  if (loaded) return loaded;
  try {
    // keytar is a CommonJS native addon; loading it lazily turns a missing/broken build into a clear error.
    loaded = createRequire(import.meta.url)('keytar') as Keytar;
    return loaded;
  } catch (cause) {
    throw new AgentError('keychain_unavailable', 'The system keychain cannot be used on this computer (keytar failed to load).', cause);
  }
}

function translate(cause: unknown, doing: string): AgentError {
  const text = cause instanceof Error ? cause.message : String(cause);
  if (/locked|unlock|prompt|dismissed/i.test(text)) {
    return new AgentError('keychain_locked', `The system keychain is locked — unlock it and try again (while trying to ${doing}).`, cause);
  }
  return new AgentError('keychain_unavailable', `The system keychain is not available (while trying to ${doing}). Stint never stores secrets in files, so it cannot continue without it.`, cause);
}

function isVanished(cause: unknown): boolean {
  return cause instanceof Error && /no such secret item/i.test(cause.message);
}

/**
 * Keychain calls run one at a time (process-wide): libsecret misbehaves when an item is listed while another call
 * deletes it (a CRITICAL assertion, then a crash or hang), and nothing here is hot enough to need parallelism.
 */
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(work: () => Promise<T>): Promise<T> {
  const next = queue.then(work, work);
  queue = next.catch(() => {});
  return next;
}

export class KeytarSecretStore implements SecretStore {
  constructor(readonly service: string) {}

  async get(account: string): Promise<string | undefined> {
    try {
      return (await serial(() => keytar().getPassword(this.service, account))) ?? undefined;
    } catch (cause) {
      throw cause instanceof AgentError ? cause : translate(cause, 'read a secret');
    }
  }

  async set(account: string, secret: string): Promise<void> {
    try {
      await serial(() => keytar().setPassword(this.service, account, secret));
    } catch (cause) {
      throw cause instanceof AgentError ? cause : translate(cause, 'store a secret');
    }
  }

  async delete(account: string): Promise<boolean> {
    try {
      return await serial(() => keytar().deletePassword(this.service, account));
    } catch (cause) {
      // Deleted meanwhile (by another process, or an earlier delete the Secret Service had not finished): gone is gone.
      if (isVanished(cause)) return false;
      throw cause instanceof AgentError ? cause : translate(cause, 'delete a secret');
    }
  }

  async list(): Promise<string[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await serial(() => keytar().findCredentials(this.service))).map((c) => c.account);
      } catch (cause) {
        // The Secret Service listed an item that was deleted before its secret was read: list again.
        if (isVanished(cause) && attempt < 3) continue;
        throw cause instanceof AgentError ? cause : translate(cause, 'list secrets');
      }
    }
  }
}
