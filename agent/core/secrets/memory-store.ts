// Secrets in this process's memory only: for a headless agent (a CI job's `stint`), which has no keychain and must
// not write a grant's password to disk. They go when the process goes, which is when its access goes too.
import type { SecretStore } from './secret-store';

export class MemorySecretStore implements SecretStore {
  readonly items = new Map<string, string>();
  async get(account: string) { return this.items.get(account); }
  async set(account: string, secret: string) { this.items.set(account, secret); }
  async delete(account: string) { return this.items.delete(account); }
  async list() { return [...this.items.keys()]; }
}
