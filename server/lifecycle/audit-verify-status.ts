// The audit chain's verify status for the admin console. Verifying walks every row (a million takes seconds), so a
// run starts on demand, in the background, one at a time per server; asking for the status never waits for it. The
// last signed checkpoint is read from the end of the checkpoint file, not the whole growing file.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { AuditVerifyStatus } from '../../shared/contract/admin';
import type { Db } from '../storage/db';
import { verifyAudit } from './audit';
import { Checkpoint, readCheckpoints, verifyAgainstCheckpoints } from './audit-checkpoints';

export interface AuditVerifierDeps {
  db: Db;
  now: () => number;
  /** The checkpoint file and the key that signs it, when checkpoints are configured. */
  checkpoints?: { file: string; publicKey: KeyObject };
  onError?: (error: unknown) => void;
}

const TAIL_BYTES = 4096;

/** The newest checkpoint of a file, read from its last few KB (a checkpoint line is ~200 bytes). */
export function lastCheckpoint(file: string): Checkpoint | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = statSync(file).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n').filter((l) => l.trim());
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        return Checkpoint.parse(JSON.parse(lines[i]!));
      } catch { /* a partial first line of the tail, or a line that is no checkpoint: look further back */ }
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export class AuditVerifier {
  private last: Omit<AuditVerifyStatus, 'checkpointsConfigured' | 'lastCheckpoint'> = { state: 'never' };
  private running: Promise<void> | undefined;

  constructor(private readonly deps: AuditVerifierDeps) {}

  status(): AuditVerifyStatus {
    const checkpoint = this.deps.checkpoints ? lastCheckpoint(this.deps.checkpoints.file) : undefined;
    return {
      ...this.last,
      checkpointsConfigured: this.deps.checkpoints !== undefined,
      ...(checkpoint ? { lastCheckpoint: { seq: checkpoint.seq, hash: checkpoint.hash, at: checkpoint.at } } : {}),
    };
  }

  /** Start a run unless one is under way; answers at once with the status (state running). */
  start(): AuditVerifyStatus {
    this.running ??= this.run().finally(() => { this.running = undefined; });
    return this.status();
  }

  /** Resolves when the run under way (if any) ends. */
  async settled(): Promise<void> {
    await this.running;
  }

  private async run(): Promise<void> {
    const startedAt = new Date(this.deps.now()).toISOString();
    this.last = { ...this.last, state: 'running', startedAt };
    try {
      const signed = this.deps.checkpoints;
      const result = signed
        ? await verifyAgainstCheckpoints(this.deps.db, readCheckpoints(signed.file).checkpoints, signed.publicKey)
        : await verifyAudit(this.deps.db);
      this.last = { state: 'done', startedAt, finishedAt: new Date(this.deps.now()).toISOString(), result };
    } catch (error) {
      this.deps.onError?.(error);
      this.last = { state: 'failed', startedAt, finishedAt: new Date(this.deps.now()).toISOString(), error: 'the audit could not be read to the end (see the server log)' };
    }
  }
}
