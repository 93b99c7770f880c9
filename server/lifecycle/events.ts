// Live events. Every event is first stored (events table, inside the transaction of the change) and then
// published on an EventBus after commit. The bus is an interface so a PostgreSQL LISTEN/NOTIFY bus can replace
// the in-process one when several servers share work; SSE streams subscribe to it and resume from the table.
import type { ServerEvent } from '../../shared/contract/events';

export interface Audience {
  users: string[];
  groups: string[];
  /** Never delivered to these users even through a group (the requester of an approval ask). */
  exclude: string[];
}

export interface StoredEvent extends Audience {
  id: number;
  at: number;
  event: ServerEvent;
}

export interface Subscriber {
  sub: string;
  groups: string[];
  deliver(event: StoredEvent, frame: string): void;
}

export interface EventBus {
  publish(events: StoredEvent[]): void;
  subscribe(subscriber: Subscriber): () => void;
  readonly size: number;
}

export function isFor(event: Audience, sub: string, groups: readonly string[]): boolean {
  if (event.exclude.includes(sub)) return false;
  return event.users.includes(sub) || event.groups.some((g) => groups.includes(g));
}

/** The SSE frame for one event; built once per event, written to every recipient. */
export function sseFrame(event: StoredEvent): string {
  const envelope = { id: String(event.id), at: new Date(event.at).toISOString(), event: event.event };
  return `id: ${event.id}\nevent: ${event.event.type}\ndata: ${JSON.stringify(envelope)}\n\n`;
}

/** In-process fan-out, indexed by user and by group so one event touches only its recipients. */
export class InProcessEventBus implements EventBus {
  private readonly byUser = new Map<string, Set<Subscriber>>();
  private readonly byGroup = new Map<string, Set<Subscriber>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  subscribe(subscriber: Subscriber): () => void {
    const add = (map: Map<string, Set<Subscriber>>, key: string) => {
      let set = map.get(key);
      if (!set) map.set(key, (set = new Set()));
      set.add(subscriber);
    };
    add(this.byUser, subscriber.sub);
    for (const g of subscriber.groups) add(this.byGroup, g);
    this.count += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.count -= 1;
      this.byUser.get(subscriber.sub)?.delete(subscriber);
      for (const g of subscriber.groups) this.byGroup.get(g)?.delete(subscriber);
    };
  }

  publish(events: StoredEvent[]): void {
    for (const event of events) {
      const targets = new Set<Subscriber>();
      for (const u of event.users) for (const s of this.byUser.get(u) ?? []) targets.add(s);
      for (const g of event.groups) for (const s of this.byGroup.get(g) ?? []) targets.add(s);
      if (targets.size === 0) continue;
      const frame = sseFrame(event);
      for (const s of targets) {
        if (event.exclude.includes(s.sub)) continue;
        try {
          s.deliver(event, frame);
        } catch {
          // A broken subscriber must not stop delivery to the others; its stream cleans itself up on close.
        }
      }
    }
  }
}
