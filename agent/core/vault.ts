// Per-grant secrets. The SSH private key exists in memory only (a Buffer, zeroed at wipe). The DB credentials are
// kept in memory for use and mirrored in the OS keychain under `grant:<id>` — not to be read back, but as a record
// that survives a crash: on start, any `grant:*` item this process does not hold is a leftover of an earlier run
// and is wiped — unless another live agent process of the same profile holds it (the record names its holder,
// holder.ts). (JS strings cannot be zeroed; dropping every reference is the best we can do for them.)
import { createRequire } from 'node:module';
import { AgentError } from './errors';
import type { SecretStore } from './secrets/secret-store';
import type { Clipboard } from './clipboard';
import { noClipboard } from './clipboard';
import { isRunning, parseHolder, thisProcess, type Holder } from './holder';

export const GRANT_ACCOUNT_PREFIX = 'grant:';

export interface GrantSecrets {
  dbUser: string;
  dbPassword: string;
  /** OpenSSH-format ed25519 private key. */
  privateKey: Buffer;
  /** `ssh-ed25519 AAAA…` line sent to the server at activation. */
  publicKey: string;
  /** The postgres:// URI (with password) once a tunnel port is known. */
  uri?: string;
}

export interface WipeReport {
  grantId: string;
  memory: boolean;
  keychain: boolean;
  clipboard: boolean;
}

type Ssh2Utils = {
  generateKeyPairSync: (type: 'ed25519', opts?: { comment?: string }) => { private: string; public: string };
  parseKey: (key: string) => unknown;
};

/** An ed25519 public key line whose key blob is whole: type string (11 bytes) and a 32-byte key, with lengths. */
function wholeEd25519Line(line: string): boolean {
  const blob = Buffer.from(line.split(' ')[1] ?? '', 'base64');
  return blob.length === 4 + 11 + 4 + 32 && blob.readUInt32BE(15) === 32;
}

/** A fresh ed25519 key pair for one grant, generated in memory (never written anywhere). */
export function generateGrantKey(comment = 'stint-grant'): { privateKey: Buffer; publicKey: string } {
  // ssh2 gives an OpenSSH-format private key (PKCS8 PEM is refused by ssh2's own client).
  const { utils } = createRequire(import.meta.url)('ssh2') as { utils: Ssh2Utils };
  // ssh2 1.17's generator drops a public key's leading zero byte (about one key in 256): the pair it returns is
  // then refused by its own parser ("Malformed OpenSSH private key") and its public line is 31 bytes. Draw again.
  for (let attempt = 0; attempt < 16; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    const publicKey = pair.public.trim();
    if (wholeEd25519Line(publicKey) && !(utils.parseKey(pair.private) instanceof Error)) return { privateKey: Buffer.from(pair.private, 'utf8'), publicKey };
  }
  throw new AgentError('tunnel_failed', 'Could not generate an SSH key for this access (the key generator kept failing). Try again.');
}

export class Vault {
  private readonly secrets: SecretStore;
  private readonly clipboard: Clipboard;
  private readonly held = new Map<string, GrantSecrets>();
  private readonly me: Holder;

  constructor(options: { secrets: SecretStore; clipboard?: Clipboard }) {
    this.secrets = options.secrets;
    this.clipboard = options.clipboard ?? noClipboard;
    this.me = thisProcess();
  }

  /**
   * Hold a grant's secrets. Memory is set synchronously (so the caller can start the SSH handshake while the
   * keychain write is in flight); if the keychain refuses, the secrets are dropped again and the error is thrown —
   * there is no keychain-less mode. A crash before the keychain write leaves nothing anywhere, so nothing to wipe.
   */
  async put(grantId: string, secrets: GrantSecrets): Promise<void> {
    this.held.set(grantId, secrets);
    try {
      await this.secrets.set(GRANT_ACCOUNT_PREFIX + grantId, JSON.stringify({ dbUser: secrets.dbUser, dbPassword: secrets.dbPassword, holder: this.me }));
    } catch (error) {
      if (this.held.get(grantId) === secrets) this.held.delete(grantId);
      secrets.privateKey.fill(0);
      throw error;
    }
  }

  get(grantId: string): GrantSecrets | undefined {
    return this.held.get(grantId);
  }

  has(grantId: string): boolean {
    return this.held.has(grantId);
  }

  grantIds(): string[] {
    return [...this.held.keys()];
  }

  setUri(grantId: string, uri: string): void {
    const secrets = this.held.get(grantId);
    if (secrets) secrets.uri = uri;
  }

  async copyUri(grantId: string): Promise<boolean> {
    const uri = this.held.get(grantId)?.uri;
    if (!uri) return false;
    await this.clipboard.writeText(uri);
    return true;
  }

  /**
   * Forget a grant's secrets: memory first (synchronously, so nothing can use them from here on), then the
   * clipboard if it still holds them, then the keychain item. Safe to call twice.
   */
  async wipe(grantId: string): Promise<WipeReport> {
    const secrets = this.held.get(grantId);
    this.held.delete(grantId);
    secrets?.privateKey.fill(0);
    let clipboard = false;
    if (secrets) {
      try {
        const text = await this.clipboard.readText();
        if (text && (text.includes(secrets.dbPassword) || (secrets.uri !== undefined && text === secrets.uri))) {
          await this.clipboard.clear();
          clipboard = true;
        }
      } catch {
        // A clipboard we cannot read is not a reason to keep the keychain item.
      }
    }
    // A grant this process does not hold may be another live process's (ending every grant it knows at quit or
    // sign-out must not take that one's record).
    const keychain = secrets || !(await this.heldElsewhere(grantId)) ? await this.secrets.delete(GRANT_ACCOUNT_PREFIX + grantId) : false;
    return { grantId, memory: secrets !== undefined, keychain, clipboard };
  }

  /** Whether the grant's keychain record names another agent process that is running (and so holds it). */
  private async heldElsewhere(grantId: string): Promise<boolean> {
    let holder: Holder | undefined;
    try {
      const record = await this.secrets.get(GRANT_ACCOUNT_PREFIX + grantId);
      holder = record ? parseHolder((JSON.parse(record) as { holder?: unknown }).holder) : undefined;
    } catch {
      holder = undefined; // unreadable: nobody's, a leftover
    }
    // This process's own records it does not hold are leftovers too (a vault started over in the same process).
    return holder !== undefined && holder.pid !== this.me.pid && isRunning(holder);
  }

  /** Wipe every grant item in the keychain that no running agent process holds (left by a crashed run). */
  async wipeLeftovers(): Promise<string[]> {
    const candidates = (await this.secrets.list())
      .filter((account) => account.startsWith(GRANT_ACCOUNT_PREFIX))
      .map((account) => account.slice(GRANT_ACCOUNT_PREFIX.length))
      .filter((grantId) => !this.held.has(grantId));
    const leftovers: string[] = [];
    for (const grantId of candidates) {
      if (await this.heldElsewhere(grantId)) continue;
      await this.secrets.delete(GRANT_ACCOUNT_PREFIX + grantId);
      leftovers.push(grantId);
    }
    return leftovers;
  }

  async wipeAll(): Promise<WipeReport[]> {
    const reports: WipeReport[] = [];
    for (const grantId of [...this.held.keys()]) reports.push(await this.wipe(grantId));
    await this.wipeLeftovers();
    return reports;
  }
}
