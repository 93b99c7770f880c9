// Signed audit checkpoints: the chain's head (seq, hash), signed with an Ed25519 key the database never sees, and
// written outside the database (a file that can live on another disk, be shipped to a log store or a WORM bucket).
// The hash chain alone shows an edited or a deleted row, but not a tail cut off, nor a chain recomputed from some row
// on: whoever can write the database can re-hash it. A checkpoint pins what the chain was: a later chain that ends
// before a checkpoint was truncated, one whose row at a checkpoint has another hash was re-hashed, and a checkpoint
// whose signature fails was forged. Verifying needs only the public key, so an auditor can check without the secret.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { Db } from '../storage/db';
import type { Clock, TimerHandle } from '../../shared/domain/clock';
import { verifyAudit, type AuditVerification } from './audit';

const CONTEXT = 'stint-audit-checkpoint/1';

export const Checkpoint = z.strictObject({ seq: z.number().int().positive(), hash: z.string().regex(/^[0-9a-f]{64}$/), at: z.iso.datetime(), sig: z.string().min(1) });
export type Checkpoint = z.infer<typeof Checkpoint>;

const signedBytes = (c: Omit<Checkpoint, 'sig'>) => Buffer.from(`${CONTEXT}\n${c.seq}\n${c.hash}\n${c.at}`);

/** The signing key from its PEM (an Ed25519 private key: `openssl genpkey -algorithm ed25519`). */
export function checkpointKey(pem: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`audit.checkpoints.key must be an Ed25519 private key, got ${privateKey.asymmetricKeyType ?? 'another kind'} (openssl genpkey -algorithm ed25519)`);
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

export function signCheckpoint(privateKey: KeyObject, head: { seq: number; hash: string }, atMs: number): Checkpoint {
  const unsigned = { seq: head.seq, hash: head.hash, at: new Date(atMs).toISOString() };
  return { ...unsigned, sig: sign(null, signedBytes(unsigned), privateKey).toString('base64') };
}

export function checkpointValid(publicKey: KeyObject, checkpoint: Checkpoint): boolean {
  return verify(null, signedBytes(checkpoint), publicKey, Buffer.from(checkpoint.sig, 'base64'));
}

/** The checkpoints of a file, oldest first; a line that is not one is reported, not skipped. */
export function readCheckpoints(file: string): { checkpoints: Checkpoint[]; unreadable: number[] } {
  const checkpoints: Checkpoint[] = [];
  const unreadable: number[] = [];
  if (!existsSync(file)) return { checkpoints, unreadable };
  readFileSync(file, 'utf8').split('\n').forEach((line, index) => {
    if (!line.trim()) return;
    try {
      checkpoints.push(Checkpoint.parse(JSON.parse(line)));
    } catch {
      unreadable.push(index + 1);
    }
  });
  return { checkpoints, unreadable };
}

/**
 * Sign the chain's current head and append it to `file`, unless the last checkpoint already names it. Any instance
 * may write one: they all sign the same chain. `last` is what the caller already knows was written (the server's
 * writer keeps it), so the growing file is read only when it is not known.
 */
export async function writeCheckpoint(db: Db, privateKey: KeyObject, file: string, nowMs: number, last?: Pick<Checkpoint, 'seq' | 'hash'>): Promise<Checkpoint | undefined> {
  const head = await db.selectFrom('audit').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  if (!head) return undefined;
  last ??= readCheckpoints(file).checkpoints.at(-1);
  if (last && last.seq === Number(head.seq) && last.hash === head.hash) return undefined;
  const checkpoint = signCheckpoint(privateKey, { seq: Number(head.seq), hash: head.hash }, nowMs);
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${JSON.stringify(checkpoint)}\n`, { mode: 0o644 });
  return checkpoint;
}

export type TamperKind = 'edited' | 'deleted' | 'truncated' | 'rehashed' | 'forged_checkpoint';
export type CheckedAudit =
  | { ok: true; count: number; lastHash: string; checkpoints: number }
  | { ok: false; kind: TamperKind; seq: number; reason: string; count: number };

/** The chain's own check, then every checkpoint against it. */
export async function verifyAgainstCheckpoints(db: Db, checkpoints: readonly Checkpoint[], publicKey: KeyObject): Promise<CheckedAudit> {
  const chain: AuditVerification = await verifyAudit(db);
  if (!chain.ok) return { ok: false, kind: chain.reason.includes('missing') ? 'deleted' : 'edited', seq: chain.seq, reason: chain.reason, count: chain.count };
  for (const checkpoint of checkpoints) {
    if (!checkpointValid(publicKey, checkpoint)) {
      return { ok: false, kind: 'forged_checkpoint', seq: checkpoint.seq, count: chain.count, reason: `the checkpoint of ${checkpoint.at} (seq ${checkpoint.seq}) is not signed by this key` };
    }
    if (checkpoint.seq > chain.count) {
      return { ok: false, kind: 'truncated', seq: chain.count + 1, count: chain.count, reason: `the chain ends at seq ${chain.count}, but a checkpoint signed at ${checkpoint.at} saw seq ${checkpoint.seq}: rows were cut off its end` };
    }
    const row = await db.selectFrom('audit').select('hash').where('seq', '=', checkpoint.seq).executeTakeFirst();
    if (row?.hash !== checkpoint.hash) {
      return { ok: false, kind: 'rehashed', seq: checkpoint.seq, count: chain.count, reason: `row ${checkpoint.seq} is not the row a checkpoint signed at ${checkpoint.at} saw: the chain was recomputed from that row or before` };
    }
  }
  return { ok: true, count: chain.count, lastHash: chain.lastHash, checkpoints: checkpoints.length };
}

/**
 * While the server runs: a checkpoint at start, then whenever `afterEntries` rows were appended since the last one or
 * `everyMs` passed with any new row — whichever comes first. The head is looked at every `pollMs` (one indexed read).
 */
export function startCheckpoints(options: {
  db: Db; privateKey: KeyObject; file: string; everyMs: number; afterEntries: number; clock: Clock; onError: (error: unknown) => void; pollMs?: number;
  /** Each checkpoint once written, e.g. for the audit stream (#25). */
  onWritten?: (checkpoint: Checkpoint) => void;
}): () => void {
  const pollMs = Math.min(options.pollMs ?? 5_000, options.everyMs);
  let timer: TimerHandle | undefined;
  let stopped = false;
  let last: { seq: number; hash: string; atMs: number } | undefined;
  const due = async (): Promise<boolean> => {
    if (!last) return true;
    const head = await options.db.selectFrom('audit').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    const appended = Number(head?.seq ?? 0) - last.seq;
    return appended >= options.afterEntries || (appended > 0 && options.clock.now() - last.atMs >= options.everyMs);
  };
  const tick = async () => {
    try {
      if (await due()) {
        const now = options.clock.now();
        const written = await writeCheckpoint(options.db, options.privateKey, options.file, now, last);
        if (written) {
          last = { seq: written.seq, hash: written.hash, atMs: now };
          options.onWritten?.(written);
        } else if (!last) {
          // Nothing new to sign at start: the file's last checkpoint (if any) is where counting resumes.
          const known = readCheckpoints(options.file).checkpoints.at(-1);
          last = { seq: known?.seq ?? 0, hash: known?.hash ?? '', atMs: now };
        }
      }
    } catch (error) {
      options.onError(error);
    }
    if (!stopped) timer = options.clock.setTimer(() => void tick(), pollMs);
  };
  void tick();
  return () => { stopped = true; timer?.cancel(); };
}
