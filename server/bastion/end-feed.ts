// The grant server's end events as the companion follows them: the live feed is SSE (GET /v1/bastion/events), and on
// every (re)connect it first catches up with GET /v1/bastion/ended?since=, so an end that happened while it was
// disconnected is still acted on. A stream silent past the idle timeout, or lost, is reconnected with backoff.
import { createParser } from 'eventsource-parser';

/** A grant's end as the companion receives it (the server's BastionEndedEvent). */
export interface EndedEvent {
  grantId: string;
  keyBase64: string;
  at: string;
  pids: number[];
  /** Set when the grant goes on with a new key: `pids` are the sessions opened with the old one. */
  cause?: 'rekeyed';
}

export interface EndFeedOptions {
  fetch: typeof fetch;
  /** The server's /v1/bastion. */
  base: string;
  headers: Record<string, string>;
  /** Aborted when the companion stops: the feed ends. */
  stopped: AbortSignal;
  /** Epoch ms the first catch-up looks back to; each end seen moves it on. */
  since: number;
  /** Reconnect when the stream is silent this long. */
  idleTimeoutMs: number;
  /** Reconnect backoff bounds. */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** Every end, caught up or live; one may come twice (catch-ups overlap). */
  onEnded: (event: EndedEvent) => void;
  /** After each (re)connect's catch-up was handed to onEnded: from here the stream is live. */
  onCaughtUp: () => void;
  warn?: (obj: object, msg?: string) => void;
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve) => {
  // The listener goes when the wait ends either way: a long outage means many waits on the one stop signal.
  const done = () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', done);
    resolve();
  };
  const timer = setTimeout(done, ms);
  signal?.addEventListener('abort', done, { once: true });
});

/** Server-sent events from a byte stream as (event, data) pairs; framing by eventsource-parser, as in the agent. */
async function* readSse(body: ReadableStream<Uint8Array>, onActivity: () => void): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  const ready: { event: string; data: string }[] = [];
  const parser = createParser({ onEvent: (message) => ready.push({ event: message.event ?? 'message', data: message.data }) });
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onActivity();
      parser.feed(decoder.decode(value, { stream: true }));
      while (ready.length) yield ready.shift()!;
    }
  } finally {
    reader.releaseLock();
  }
}

function isEndedEvent(value: unknown): value is EndedEvent {
  const v = value as EndedEvent;
  return typeof v === 'object' && v !== null && typeof v.grantId === 'string' && typeof v.at === 'string'
    && Array.isArray(v.pids) && v.pids.every((p) => Number.isInteger(p) && p > 1) && (v.cause === undefined || v.cause === 'rekeyed');
}

/** Follow the ends until `stopped` is aborted; resolves then. */
export async function followEnds(options: EndFeedOptions): Promise<void> {
  const { base, headers, stopped } = options;
  /** The latest end seen, epoch ms: where the next catch-up starts. */
  let since = options.since;

  function deliver(event: EndedEvent): void {
    const at = Date.parse(event.at);
    if (!Number.isNaN(at) && at > since) since = at;
    options.onEnded(event);
  }

  async function catchUp(signal: AbortSignal): Promise<void> {
    // Overlap by a few seconds: ends are de-duplicated, and clocks or commit order may differ slightly.
    const from = new Date(since - 5_000).toISOString();
    const response = await options.fetch(`${base}/ended?since=${encodeURIComponent(from)}`, { headers, signal });
    if (!response.ok) throw new Error(`ended?since answered ${response.status}`);
    const body = (await response.json()) as { events?: unknown[] };
    for (const event of body.events ?? []) if (isEndedEvent(event)) deliver(event);
  }

  let backoff = options.minBackoffMs;
  while (!stopped.aborted) {
    const attempt = new AbortController();
    const onStop = () => attempt.abort();
    stopped.addEventListener('abort', onStop, { once: true });
    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => attempt.abort(), options.idleTimeoutMs);
    };
    try {
      touch();
      const response = await options.fetch(`${base}/events`, { headers: { ...headers, accept: 'text/event-stream' }, signal: attempt.signal });
      if (!response.ok || !response.body) throw new Error(`events answered ${response.status}`);
      // Subscribed first, then catch up: nothing can fall between the two.
      await catchUp(attempt.signal);
      options.onCaughtUp();
      backoff = options.minBackoffMs;
      for await (const message of readSse(response.body, touch)) {
        if (message.event !== 'ended') continue;
        try {
          const event: unknown = JSON.parse(message.data);
          if (isEndedEvent(event)) deliver(event);
        } catch { /* a malformed event is skipped; the next catch-up covers it */ }
      }
    } catch (error) {
      if (!stopped.aborted) options.warn?.({ err: String(error) }, 'grant server stream lost; reconnecting');
    } finally {
      clearTimeout(idle);
      stopped.removeEventListener('abort', onStop);
      attempt.abort();
    }
    if (stopped.aborted) break;
    await sleep(backoff, stopped);
    backoff = Math.min(options.maxBackoffMs, backoff * 2);
  }
}
