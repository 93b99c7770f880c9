// Audit streaming (#25): every audit entry, and every signed checkpoint, also goes to the configured sinks (RFC 5424
// syslog, a rotated JSON Lines file) so any SIEM can ingest them. It never holds up a change: entries are read back
// from the database after their transaction committed (told by the write queue, and polled, so entries other
// instances commit are seen too), in chain order, and handed to each sink through its own bounded queue. A sink that
// is down or too slow loses records from its queue — counted in stint_audit_stream_dropped_total — while the
// database keeps them all (`stint-server audit export` replays any range).
import type { Checkpoint } from '../lifecycle/audit-checkpoints';
import type { AuditEntry } from '../../shared/contract/http';
import { toAuditEntry } from '../lifecycle/audit';
import type { Logger } from '../lifecycle/support';
import type { Metrics } from '../metrics';
import type { Db } from '../storage/db';

export type StreamRecord = { type: 'entry'; entry: AuditEntry } | { type: 'checkpoint'; checkpoint: Checkpoint };

export interface AuditSink {
  /** For the metrics' `sink` label and the log. */
  name: string;
  send(records: StreamRecord[]): Promise<void>;
  close(): Promise<void>;
}

const READ_BATCH = 500;
const SEND_BATCH = 200;

class SinkQueue {
  private readonly queue: StreamRecord[] = [];
  private sending: Promise<void> | undefined;
  private warned = false;

  constructor(readonly sink: AuditSink, private readonly limit: number, private readonly deps: { metrics: Pick<Metrics, 'auditStreamed' | 'auditStreamDropped'>; log: Logger }) {}

  push(record: StreamRecord): void {
    if (this.queue.length >= this.limit) {
      this.deps.metrics.auditStreamDropped.inc({ sink: this.sink.name });
      return;
    }
    this.queue.push(record);
    this.sending ??= this.pump().finally(() => { this.sending = undefined; });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, SEND_BATCH);
      try {
        await this.sink.send(batch);
        this.deps.metrics.auditStreamed.inc({ sink: this.sink.name }, batch.length);
        this.warned = false;
      } catch (error) {
        this.deps.metrics.auditStreamDropped.inc({ sink: this.sink.name }, batch.length);
        // Once per outage, not once per batch.
        if (!this.warned) this.deps.log.warn({ err: error, sink: this.sink.name }, 'audit stream: a sink failed; its records are dropped (the database keeps them) until it is back');
        this.warned = true;
      }
    }
  }

  /** Wait (at most `ms`) for what is queued to be sent. */
  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while ((this.sending || this.queue.length) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface AuditStreamOptions {
  db: Db;
  sinks: AuditSink[];
  /** Records each sink may have waiting; beyond it new ones are dropped (and counted). */
  queueLimit: number;
  /** Stream the entries after this seq (the JSON Lines file's last one on a restart, else the head at start). */
  after: number;
  metrics: Pick<Metrics, 'auditStreamed' | 'auditStreamDropped'>;
  log: Logger;
  /** How often to look for entries without being told (other instances' commits), ms. */
  pollMs?: number;
}

export class AuditStream {
  private readonly queues: SinkQueue[];
  private cursor: number;
  private reading: Promise<void> | undefined;
  private again = false;
  private readonly poll: NodeJS.Timeout;

  constructor(private readonly options: AuditStreamOptions) {
    this.queues = options.sinks.map((sink) => new SinkQueue(sink, options.queueLimit, options));
    this.cursor = options.after;
    this.poll = setInterval(() => this.committed(), options.pollMs ?? 5_000);
    this.poll.unref();
  }

  /** Audit entries were committed: read them (soon, not now — the committing change is not held up). */
  committed(): void {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = this.readNew().catch((error: unknown) => {
      this.options.log.warn({ err: error }, 'audit stream: reading new entries failed; retried at the next commit or poll');
    }).finally(() => {
      this.reading = undefined;
      if (this.again) {
        this.again = false;
        this.committed();
      }
    });
  }

  /** A signed checkpoint was written: it travels with the entries. */
  checkpoint(checkpoint: Checkpoint): void {
    this.push({ type: 'checkpoint', checkpoint });
  }

  private push(record: StreamRecord): void {
    for (const queue of this.queues) queue.push(record);
  }

  private async readNew(): Promise<void> {
    for (;;) {
      const rows = await this.options.db.selectFrom('audit').selectAll().where('seq', '>', this.cursor).orderBy('seq').limit(READ_BATCH).execute();
      for (const row of rows) {
        this.push({ type: 'entry', entry: toAuditEntry({ ...row, seq: Number(row.seq) }) });
        this.cursor = Number(row.seq);
      }
      if (rows.length < READ_BATCH) return;
    }
  }

  /** Stream what is committed, give the sinks a moment to send it, and close them. */
  async close(drainMs = 2_000): Promise<void> {
    clearInterval(this.poll);
    while (this.reading) await this.reading;
    await this.readNew().catch(() => undefined);
    await Promise.all(this.queues.map((queue) => queue.drain(drainMs)));
    await Promise.all(this.queues.map((queue) => queue.sink.close().catch(() => undefined)));
  }
}
