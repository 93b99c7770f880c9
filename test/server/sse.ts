// A minimal Server-Sent Events client over fetch, for tests: collects parsed envelopes, waits for one that matches.
import { createParser } from 'eventsource-parser';
import { ServerEventEnvelope } from '../../shared/contract/events';

export interface EventStream {
  events: ServerEventEnvelope[];
  comments: number;
  status: number;
  next: (predicate: (e: ServerEventEnvelope) => boolean, timeoutMs?: number) => Promise<ServerEventEnvelope>;
  close: () => void;
}

export async function openEvents(base: string, token: string, lastEventId?: string): Promise<EventStream> {
  const controller = new AbortController();
  const response = await fetch(`${base}/v1/events`, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: controller.signal,
  });
  const stream: EventStream = {
    events: [], comments: 0, status: response.status,
    next: (predicate, timeoutMs = 5_000) => new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = () => {
        const found = stream.events.find(predicate);
        if (found) return resolve(found);
        if (Date.now() - started > timeoutMs) return reject(new Error(`no matching event within ${timeoutMs} ms; got ${stream.events.map((e) => `${e.id}:${e.event.type}`).join(', ')}`));
        setTimeout(poll, 10);
      };
      poll();
    }),
    close: () => controller.abort(),
  };
  if (!response.ok || !response.body) return stream;
  const parser = createParser({
    onEvent: (message) => { stream.events.push(ServerEventEnvelope.parse(JSON.parse(message.data))); },
    onComment: () => { stream.comments += 1; },
  });
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch {
      // aborted
    }
  })();
  return stream;
}
