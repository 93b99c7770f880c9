// Secrets (refresh token, per-grant DB credentials) live in the OS keychain behind this interface, and nowhere
// else: there is deliberately no file-backed implementation to fall back to when the keychain is missing/locked.
export interface SecretStore {
  /** The secret for `account`, or undefined when there is none. */
  get(account: string): Promise<string | undefined>;
  set(account: string, secret: string): Promise<void>;
  /** true when an item was removed. */
  delete(account: string): Promise<boolean>;
  /** Every account this store holds (under its service name). */
  list(): Promise<string[]>;
}
