// The user event stream (GET /v1/events): Server-Sent Events per connection, replayed from the events table on
// Last-Event-ID, with heartbeats; a stream ends when the token that opened it expires.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../shared/domain/clock';
import type { Metrics } from '../metrics';
import type { Store } from '../storage/db';
import { isFor, sseFrame, type EventBus, type Subscriber } from '../lifecycle/events';
import { sendProblem } from './problem';

/** Server-Sent Events: one stream per connection, replay from the events table on Last-Event-ID, heartbeats. */
export class SseHub {
  private readonly open_ = new Set<{ end: () => void; heartbeat: () => void }>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly bus: EventBus, private readonly store: Store, private readonly heartbeatMs: number, private readonly metrics: Metrics, private readonly clock: Clock) {}

  async open(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers['last-event-id'] ?? (request.query as { lastEventId?: string } | undefined)?.lastEventId;
    let lastId: number | undefined;
    if (header !== undefined) {
      if (typeof header !== 'string' || !/^[0-9]{1,15}$/.test(header)) {
        void sendProblem(reply, { status: 400, code: 'invalid_last_event_id', message: 'Last-Event-ID must be an event id (digits)' });
        return;
      }
      lastId = Number(header);
    }
    const user = request.user;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 2000\n: connected\n\n');
    // Closed while this request was still being authenticated: a stream kept now would never be ended, and the
    // server's close would wait for its connection forever. The agent reconnects, as after any end.
    if (this.closed) {
      res.end();
      return;
    }
    request.raw.socket.setNoDelay(true);
    let lastSent = lastId ?? 0;
    // Live events are sent when newer than what the replay covered. Not "newer than the last live one": with
    // several instances (PostgreSQL) another instance's event can reach this one after a local event with a
    // higher id, and must not be dropped. One instance publishes in id order, so for it the two rules agree.
    let floor = lastSent;
    let buffer: { id: number; frame: string }[] | undefined = lastId !== undefined ? [] : undefined;
    const write = (frame: string) => {
      // A client that stops reading is dropped rather than buffered without bound; it resumes with Last-Event-ID.
      if (res.writableLength > 1_000_000) return res.destroy();
      res.write(frame);
    };
    const subscriber: Subscriber = {
      sub: user.sub,
      groups: user.groups,
      deliver: (event, frame) => {
        if (buffer) buffer.push({ id: event.id, frame });
        else if (event.id > floor) write(frame);
      },
    };
    const unsubscribe = this.bus.subscribe(subscriber);
    const entry = { end: () => res.end(), heartbeat: () => write(': hb\n\n') };
    this.open_.add(entry);
    this.ensureTimer();
    // The stream lives no longer than the token that opened it: a disabled user stops hearing events when their
    // token expires; the agent reconnects with a fresh token and Last-Event-ID.
    const cancelExpiry = user.tokenExpiresAt !== undefined ? this.clock.setTimer(() => res.end(), user.tokenExpiresAt - this.clock.now()) : undefined;
    res.on('close', () => { unsubscribe(); this.open_.delete(entry); cancelExpiry?.cancel(); });
    if (lastId !== undefined) {
      // Subscribed first, then replay: nothing published meanwhile is lost, nothing is sent twice.
      for (;;) {
        const rows = await this.store.db.selectFrom('events').selectAll().where('id', '>', lastSent).orderBy('id').limit(1000).execute();
        for (const row of rows) {
          const stored = { id: Number(row.id), at: Number(row.at), users: JSON.parse(row.users), groups: JSON.parse(row.groups), exclude: JSON.parse(row.exclude), event: JSON.parse(row.payload) };
          if (isFor(stored, user.sub, user.groups)) write(sseFrame(stored));
          lastSent = stored.id;
        }
        if (rows.length < 1000) break;
      }
      const pending = buffer ?? [];
      buffer = undefined;
      floor = lastSent;
      for (const item of pending) if (item.id > floor) write(item.frame);
    }
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.metrics.sseClients.set(this.open_.size);
      for (const entry of this.open_) entry.heartbeat();
    }, this.heartbeatMs);
    this.timer.unref();
  }

  /** End every open stream; streams that would open later end at once (the server is closing). */
  closeAll(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const entry of this.open_) entry.end();
    this.open_.clear();
  }
}
