// The event bus for several server instances on one PostgreSQL: each instance delivers its own events to its SSE
// clients at once, and tells the others with NOTIFY inside the committing transaction. The payload is only the
// sender and the id range (NOTIFY payloads are limited to 8000 bytes); receivers read the rows from the events
// table. Under the write lock (see service.ts) event ids are assigned in commit order, so a receiver keeps one
// cursor and reads everything after it: notifications arriving while a read runs are coalesced into the next read
// (no backlog under load), and a read after a reconnect catches up on what was missed.
import { randomBytes } from 'node:crypto';
import { sql, type RawBuilder, type Transaction } from 'kysely';
import pg from 'pg';
import type { Db } from '../storage/db';
import type { Database } from '../storage/schema';
import { InProcessEventBus, type EventBus, type StoredEvent, type Subscriber } from './events';

export const EVENTS_CHANNEL = 'stint_events';

/** A bus that must hear about events inside the transaction that stores them. */
export interface TxNotifyingBus extends EventBus {
  notifyInTransaction(trx: Transaction<Database>, ids: number[]): Promise<void>;
  /**
   * The same NOTIFY as an expression over the stored ids (`min`/`max` of an `id` column), for a writer that stores
   * events and notifies in one statement. The caller must then pass the ids to `ownIds`.
   */
  notifyExpression(): RawBuilder<unknown>;
  /** Ids stored by this instance in a transaction about to commit (see notifyInTransaction). */
  ownIds(ids: number[]): void;
}

export function hasRemoteEvents(bus: EventBus): bus is EventBus & Pick<PgEventBus, 'onRemote'> {
  return typeof (bus as Partial<PgEventBus>).onRemote === 'function';
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
  /** Every event id up to here has been delivered (ours at publish, the others' by reading them). */
  private cursor = 0;
  /** Highest id announced by another instance and not yet read. */
  private announced = 0;
  /** Our own recent ids: already delivered, skipped when reading. */
  private readonly own = new Set<number>();
  private reading: Promise<void> | undefined;
  private again = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly remoteListeners = new Set<{ listener: (events: StoredEvent[]) => void; wanted: () => boolean }>();

  constructor(private readonly options: PgEventBusOptions) {}

  get size(): number {
    return this.local.size;
  }

  /** Open the LISTEN connection. Resolves once listening, so events raised after it reach this instance. */
  async start(): Promise<void> {
    const head = await this.options.db.selectFrom('events').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
    this.cursor = Number(head?.id ?? 0);
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.url, application_name: 'stint-server-events' });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (message) => {
      if (message.channel !== EVENTS_CHANNEL || !message.payload) return;
      const [sender, , to] = message.payload.split(' ');
      if (sender === this.instanceId) return;
      this.announced = Math.max(this.announced, Number(to));
      this.read();
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
        .then(() => { this.announced = Number.MAX_SAFE_INTEGER; this.read(); })
        .catch(() => this.scheduleReconnect(Math.min(delay * 2, 5_000)));
    }, delay);
    this.reconnectTimer.unref();
  }

  /** One read at a time; notifications during a read make one more read afterwards. */
  private read(): void {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        try {
          await this.readNew();
        } catch (error) {
          this.options.log?.warn({ err: error }, 'could not read events for delivery; retrying');
          await new Promise((resolve) => setTimeout(resolve, 200).unref());
          this.again = !this.closed;
        }
      } while (this.again && !this.closed);
    })().finally(() => { this.reading = undefined; });
  }

  private async readNew(): Promise<void> {
    while (this.cursor < this.announced) {
      if (this.local.size === 0 && ![...this.remoteListeners].some((r) => r.wanted()) && this.announced !== Number.MAX_SAFE_INTEGER) {
        // Nobody here listens: nothing to deliver, only move the cursor on.
        this.cursor = this.announced;
        return;
      }
      const rows = await this.options.db.selectFrom('events').selectAll().where('id', '>', this.cursor).orderBy('id').limit(1000).execute();
      if (rows.length === 0) {
        if (this.announced === Number.MAX_SAFE_INTEGER) this.announced = this.cursor;
        return;
      }
      this.deliverRows(rows.filter((r) => !this.own.has(Number(r.id))));
      this.cursor = Math.max(this.cursor, Number(rows[rows.length - 1]!.id));
      if (rows.length < 1000 && this.announced === Number.MAX_SAFE_INTEGER) this.announced = this.cursor;
    }
  }

  private deliverRows(rows: Row[]): void {
    const events: StoredEvent[] = rows.map((row) => ({
      id: Number(row.id), at: Number(row.at), users: JSON.parse(row.users) as string[], groups: JSON.parse(row.groups) as string[],
      exclude: JSON.parse(row.exclude) as string[], event: JSON.parse(row.payload) as StoredEvent['event'],
    }));
    this.local.publish(events);
    for (const { listener } of this.remoteListeners) {
      try { listener(events); } catch { /* a listener's failure must not stop delivery */ }
    }
  }

  /** Events raised by other instances, after they reached this instance's subscribers. */
  onRemote(listener: (events: StoredEvent[]) => void, wanted: () => boolean = () => true): () => void {
    const entry = { listener, wanted };
    this.remoteListeners.add(entry);
    return () => this.remoteListeners.delete(entry);
  }

  async notifyInTransaction(trx: Transaction<Database>, ids: number[]): Promise<void> {
    this.ownIds(ids);
    const from = Math.min(...ids);
    const to = Math.max(...ids);
    await sql`select pg_notify(${EVENTS_CHANNEL}, ${`${this.instanceId} ${from} ${to}`})`.execute(trx);
  }

  notifyExpression(): RawBuilder<unknown> {
    return sql`pg_notify(${EVENTS_CHANNEL}, ${`${this.instanceId} `} || min(id) || ' ' || max(id))`;
  }

  ownIds(ids: number[]): void {
    // Ours from now on: a read prompted by another instance may see them committed before we publish them, and
    // must not deliver them a second time. (Ids of a transaction that rolls back are never seen.)
    for (const id of ids) {
      this.own.add(id);
      if (this.own.size > 10_000) this.own.delete(this.own.values().next().value!);
    }
  }

  publish(events: StoredEvent[]): void {
    this.ownIds(events.map((e) => e.id));
    // The cursor does not move past our own events here: another instance's event with a lower id may be
    // committed but not yet announced. Reads skip ours by id.
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
    await this.reading;
  }
}
