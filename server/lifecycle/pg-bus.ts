// The event bus for several server instances on one PostgreSQL: each instance delivers its own events to its SSE
// clients at once, and tells the others with NOTIFY inside the committing transaction. The payload is only the
// sender and the id range (NOTIFY payloads are limited to 8000 bytes); receivers read the rows from the events
// table. Under the write lock (see service.ts) a transaction's event ids are contiguous and in commit order, so
// a range names exactly that transaction's events.
import { randomBytes } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { Db } from '../storage/db';
import type { Database } from '../storage/schema';
import { InProcessEventBus, type EventBus, type StoredEvent, type Subscriber } from './events';

export const EVENTS_CHANNEL = 'stint_events';

/** A bus that must hear about events inside the transaction that stores them. */
export interface TxNotifyingBus extends EventBus {
  notifyInTransaction(trx: Transaction<Database>, ids: number[]): Promise<void>;
}

export function hasTxNotify(bus: EventBus): bus is TxNotifyingBus {
  return typeof (bus as Partial<TxNotifyingBus>).notifyInTransaction === 'function';
}

export interface PgEventBusOptions {
  db: Db;
  /** Connection URL for the dedicated LISTEN connection (a pooled connection cannot keep listening). */
  url: string;
  log?: { warn(obj: object, msg?: string): void };
  /** First reconnect delay after the LISTEN connection drops (doubles up to 5 s). */
  reconnectMs?: number;
}

type Row = { id: number; at: number; users: string; groups: string; exclude: string; payload: string };

export class PgEventBus implements TxNotifyingBus {
  /** Identifies this instance's own notifications, which it has already delivered. */
  readonly instanceId = randomBytes(6).toString('hex');
  private readonly local = new InProcessEventBus();
  private client: pg.Client | undefined;
  private closed = false;
  /** Highest remote event id delivered; after a reconnect, everything after it (not ours) is read and delivered. */
  private lastRemote = 0;
  /** Our own recent ids, so a catch-up after a reconnect does not deliver them twice. */
  private readonly own = new Set<number>();
  private queue: Promise<void> = Promise.resolve();
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PgEventBusOptions) {}

  get size(): number {
    return this.local.size;
  }

  /** Open the LISTEN connection. Resolves once listening, so events raised after it reach this instance. */
  async start(): Promise<void> {
    const head = await this.options.db.selectFrom('events').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
    this.lastRemote = Number(head?.id ?? 0);
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.url, application_name: 'stint-server-events' });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (message) => {
      if (message.channel !== EVENTS_CHANNEL || !message.payload) return;
      const [sender, from, to] = message.payload.split(' ');
      if (sender === this.instanceId) return;
      this.enqueue(() => this.fetchAndDeliver(Number(from), Number(to)));
    });
    await client.connect();
    await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    this.client = client;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    void client.end().catch(() => {});
    if (this.closed) return;
    this.options.log?.warn({}, 'event LISTEN connection lost; reconnecting');
    this.scheduleReconnect(this.options.reconnectMs ?? 250);
  }

  private scheduleReconnect(delay: number): void {
    this.reconnectTimer = setTimeout(() => {
      if (this.closed) return;
      this.connect()
        // Notifications sent while we were away are gone: read what was stored meanwhile.
        .then(() => this.enqueue(() => this.catchUp()))
        .catch(() => this.scheduleReconnect(Math.min(delay * 2, 5_000)));
    }, delay);
    this.reconnectTimer.unref();
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((error: unknown) => this.options.log?.warn({ err: error }, 'could not read events for delivery'));
  }

  private async fetchAndDeliver(from: number, to: number): Promise<void> {
    const rows = await this.options.db.selectFrom('events').selectAll().where('id', '>=', from).where('id', '<=', to).orderBy('id').execute();
    this.deliverRows(rows);
  }

  private async catchUp(): Promise<void> {
    for (;;) {
      const rows = await this.options.db.selectFrom('events').selectAll().where('id', '>', this.lastRemote).orderBy('id').limit(1000).execute();
      this.deliverRows(rows.filter((r) => !this.own.has(Number(r.id))));
      if (rows.length === 0) return;
      this.lastRemote = Math.max(this.lastRemote, ...rows.map((r) => Number(r.id)));
      if (rows.length < 1000) return;
    }
  }

  private deliverRows(rows: Row[]): void {
    const events: StoredEvent[] = rows.map((row) => ({
      id: Number(row.id), at: Number(row.at), users: JSON.parse(row.users) as string[], groups: JSON.parse(row.groups) as string[],
      exclude: JSON.parse(row.exclude) as string[], event: JSON.parse(row.payload) as StoredEvent['event'],
    }));
    for (const e of events) this.lastRemote = Math.max(this.lastRemote, e.id);
    this.local.publish(events);
  }

  async notifyInTransaction(trx: Transaction<Database>, ids: number[]): Promise<void> {
    const from = Math.min(...ids);
    const to = Math.max(...ids);
    await sql`select pg_notify(${EVENTS_CHANNEL}, ${`${this.instanceId} ${from} ${to}`})`.execute(trx);
  }

  publish(events: StoredEvent[]): void {
    for (const e of events) {
      this.own.add(e.id);
      if (this.own.size > 10_000) this.own.delete(this.own.values().next().value!);
    }
    this.local.publish(events);
  }

  subscribe(subscriber: Subscriber): () => void {
    return this.local.subscribe(subscriber);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
    await this.queue;
  }
}
