// A minimal Server-Sent Events client over fetch, for tests: collects parsed envelopes, waits for one that matches.
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
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (data) stream.events.push(ServerEventEnvelope.parse(JSON.parse(data)));
          else if (frame.split('\n').some((l) => l.startsWith(':'))) stream.comments += 1;
        }
      }
    } catch {
      // aborted
    }
  })();
  return stream;
}
