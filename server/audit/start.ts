// The audit stream as configured (audit.stream): its sinks, and where it resumes.
import type { ServerConfig } from '../config';
import type { Logger } from '../lifecycle/support';
import type { Metrics } from '../metrics';
import type { Db } from '../storage/db';
import { jsonlFileSink, lastStreamedSeq } from './jsonl';
import { AuditStream } from './stream';
import { syslogSink } from './syslog';

type StreamConfig = NonNullable<ServerConfig['audit']['stream']>;

/**
 * Resumes after the JSON Lines file's last entry when there is one (a restart loses nothing the file had not got),
 * else streams from the chain's head now: the history before streaming was turned on is `audit export`'s job.
 */
export async function startAuditStream(config: StreamConfig, deps: { db: Db; metrics: Pick<Metrics, 'auditStreamed' | 'auditStreamDropped'>; log: Logger; pollMs?: number }): Promise<AuditStream> {
  const sinks = [...config.syslog.map(syslogSink), ...(config.file ? [jsonlFileSink(config.file)] : [])];
  const head = await deps.db.selectFrom('audit').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
  const fromFile = config.file ? lastStreamedSeq(config.file.path) : undefined;
  const after = Math.min(fromFile ?? Number.POSITIVE_INFINITY, Number(head?.seq ?? 0));
  return new AuditStream({ db: deps.db, sinks, queueLimit: config.queue, after, metrics: deps.metrics, log: deps.log, pollMs: deps.pollMs });
}
