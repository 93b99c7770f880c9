// The authorized_keys lines the key command hands sshd for a grant's key, and what is derived from a key for sshd and
// the audit log. A line is parsed by sshd as options, so every part is checked before it is written.
import { createHash } from 'node:crypto';
import type { BastionGrant, HostGrant } from './seam';

const KEY_BODY = /^[A-Za-z0-9+/]+={0,2}$/;
const HOSTNAME = /^[A-Za-z0-9._-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;

/** `YYYYMMDDHHMMSSZ` in UTC, the form sshd's expiry-time accepts (with Z, or sshd reads local time). */
export function sshExpiryTime(atMs: number): string {
  const at = new Date(atMs);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(at.getUTCFullYear(), 4)}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}`
    + `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}Z`;
}

/** The key's fingerprint as sshd logs it (`SHA256:` + unpadded base64 of the blob's SHA-256): ties a row to sshd's log. */
export function sshFingerprint(keyBase64: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(keyBase64, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** A plausible ssh-ed25519 public key body: base64 of a blob that starts with the key type. */
export function isEd25519KeyBody(keyBase64: string): boolean {
  if (!KEY_BODY.test(keyBase64) || keyBase64.length > 200) return false;
  const blob = Buffer.from(keyBase64, 'base64');
  return blob.length === 51 && blob.readUInt32BE(0) === 11 && blob.subarray(4, 15).toString('latin1') === 'ssh-ed25519';
}

/**
 * The authorized_keys line for a grant on an SSH target host: a login with a shell or a command and a TTY, nothing
 * forwarded (restrict, then pty back), until the grant's end. Undefined when it could not be written safely.
 */
export function hostAuthorizedKeyLine(grant: Pick<HostGrant, 'grantId' | 'endsAt'>, keyBase64: string): string | undefined {
  if (!isEd25519KeyBody(keyBase64) || Number.isNaN(new Date(grant.endsAt).getTime())) return undefined;
  const comment = `grant:${grant.grantId.replace(/[^A-Za-z0-9_.:-]/g, '_')}`;
  return `restrict,pty,expiry-time="${sshExpiryTime(grant.endsAt)}" ssh-ed25519 ${keyBase64} ${comment}`;
}

/**
 * The authorized_keys line for a grant: forwarding to the grant's one target only, until the grant's end, and no
 * command (restrict alone still lets `exec` run one, so the forced command is nologin). Undefined when any part
 * could not be written safely (the line is parsed by sshd as options; nothing may break out of a quoted value).
 */
export function authorizedKeyLine(grant: BastionGrant, keyBase64: string): string | undefined {
  const { host, port } = grant.target;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  let hostPart: string;
  if (HOSTNAME.test(host)) hostPart = host;
  else if (IPV6.test(host) && host.includes(':')) hostPart = `[${host}]`;
  else return undefined;
  if (!isEd25519KeyBody(keyBase64) || Number.isNaN(new Date(grant.endsAt).getTime())) return undefined;
  const comment = `grant:${grant.grantId.replace(/[^A-Za-z0-9_.:-]/g, '_')}`;
  return `restrict,port-forwarding,permitopen="${hostPart}:${port}",expiry-time="${sshExpiryTime(grant.endsAt)}",`
    + `command="/usr/sbin/nologin" ssh-ed25519 ${keyBase64} ${comment}`;
}
