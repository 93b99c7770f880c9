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

export class KeytarSecretStore implements SecretStore {
  constructor(readonly service: string) {}

  async get(account: string): Promise<string | undefined> {
    try {
      return (await keytar().getPassword(this.service, account)) ?? undefined;
    } catch (cause) {
      throw cause instanceof AgentError ? cause : translate(cause, 'read a secret');
    }
  }

  async set(account: string, secret: string): Promise<void> {
    try {
      await keytar().setPassword(this.service, account, secret);
    } catch (cause) {
      throw cause instanceof AgentError ? cause : translate(cause, 'store a secret');
    }
  }

  async delete(account: string): Promise<boolean> {
    try {
      return await keytar().deletePassword(this.service, account);
    } catch (cause) {
      throw cause instanceof AgentError ? cause : translate(cause, 'delete a secret');
    }
  }

  async list(): Promise<string[]> {
    try {
      return (await keytar().findCredentials(this.service)).map((c) => c.account);
    } catch (cause) {
      throw cause instanceof AgentError ? cause : translate(cause, 'list secrets');
    }
  }
}
