import type { SecretStore } from '../../agent/core/secrets/secret-store';

/** A SecretStore in memory: for unit tests of code above the keychain (the keychain itself is tested for real). */
export class MemorySecretStore implements SecretStore {
  readonly items = new Map<string, string>();
  async get(account: string) { return this.items.get(account); }
  async set(account: string, secret: string) { this.items.set(account, secret); }
  async delete(account: string) { return this.items.delete(account); }
  async list() { return [...this.items.keys()]; }
}
