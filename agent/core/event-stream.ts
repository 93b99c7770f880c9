// The server's event stream (GET /v1/events, Server-Sent Events) with reconnect: exponential backoff with jitter,
// resume with Last-Event-ID so nothing is missed or applied twice, a fresh token after a 401, and a status the UI
// shows ("offline"). Malformed events are reported and skipped; the stream goes on.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ServerEventEnvelope } from '../../shared/contract/events';
import type { Clock, TimerHandle } from '../../shared/domain/clock';
import { AgentError } from './errors';
import { refusal } from './api-client';

export type StreamStatus = 'connecting' | 'online' | 'offline';

export interface EventStreamOptions {
  url: string;
  headers: () => Promise<Record<string, string>>;
  /** After a 401: get a new token before reconnecting. */
  refreshAccessToken?: () => Promise<unknown>;
  onEvent: (envelope: ServerEventEnvelope) => void;
  onStatus?: (status: StreamStatus, error?: AgentError) => void;
  onProblem?: (error: AgentError) => void;
  clock: Clock;
  fetch?: typeof fetch;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
  /** No bytes (events or heartbeats) for this long: the connection is presumed dead and reopened. */
  idleTimeoutMs?: number;
  lastEventId?: string;
}

export class EventStream {
  private readonly options: EventStreamOptions;
  private readonly doFetch: typeof fetch;
  private abort?: AbortController;
  private timer?: TimerHandle;
  private idle?: TimerHandle;
  private running = false;
  /** Between attempts (a backoff timer is set), as opposed to connecting or connected. */
  private waiting = false;
  private failures = 0;
  private status_: StreamStatus = 'offline';
  lastEventId?: string;

  constructor(options: EventStreamOptions) {
    this.options = options;
    this.doFetch = options.fetch ?? fetch;
    this.lastEventId = options.lastEventId;
  }

  get status(): StreamStatus {
    return this.status_;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.idle?.cancel();
    this.abort?.abort();
  }

  /**
   * The server answered something else: if we are only waiting out a backoff, try now. Unlike reconnectNow() this
   * never interrupts an attempt in progress or a live stream, so it is cheap to call on every successful request.
   */
  wake(): void {
    if (!this.running || !this.waiting) return;
    this.timer?.cancel();
    void this.connect();
  }

  /** Reconnect at once (e.g. after resume from sleep or the network coming back). */
  reconnectNow(): void {
    if (!this.running) return;
    this.timer?.cancel();
    this.abort?.abort();
    this.failures = 0;
    void this.connect();
  }

  private setStatus(status: StreamStatus, error?: AgentError): void {
    if (status === this.status_) return;
    this.status_ = status;
    this.options.onStatus?.(status, error);
  }

  private armIdle(abort: AbortController): void {
    this.idle?.cancel();
    this.idle = this.options.clock.setTimer(() => abort.abort(), this.options.idleTimeoutMs ?? 45_000);
  }

  private async connect(): Promise<void> {
    this.waiting = false;
    if (!this.running) return;
    const abort = new AbortController();
    this.abort = abort;
    // While retrying after failures the UI keeps showing "offline" rather than flickering.
    if (this.status_ !== 'online' && this.failures === 0) this.setStatus('connecting');
    let retryMs = 0;
    let failure: AgentError | undefined;
    try {
      const response = await this.doFetch(this.options.url, {
        headers: {
          ...(await this.options.headers()),
          accept: 'text/event-stream',
          ...(this.lastEventId ? { 'last-event-id': this.lastEventId } : {}),
        },
        signal: abort.signal,
      });
      if (response.status === 401 && this.options.refreshAccessToken) {
        await response.body?.cancel();
        await this.options.refreshAccessToken();
        throw new AgentError('session_expired', 'The event stream needed a fresh sign-in token.');
      }
      if (!response.ok || !response.body) {
        // The server's own problem (e.g. storage_unavailable) says more than the status.
        const json: unknown = await response.json().catch(() => undefined);
        throw refusal(response.status, json ?? { detail: `The server's event stream answered HTTP ${response.status}.` });
      }
      this.failures = 0;
      this.setStatus('online');
      this.armIdle(abort);
      const parser = createParser({ onEvent: (message) => this.message(message), onRetry: (ms) => { retryMs = ms; } });
      const decoder = new TextDecoder();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        this.armIdle(abort);
        parser.feed(decoder.decode(chunk, { stream: true }));
      }
    } catch (cause) {
      failure = cause instanceof AgentError ? cause : new AgentError('server_unreachable', 'The server can\'t be reached — your active access still ends on time.', cause);
    } finally {
      this.idle?.cancel();
    }
    if (!this.running || this.abort !== abort) return;
    this.failures++;
    const error = failure ?? new AgentError('server_unreachable', 'The connection to the server closed — reconnecting.');
    // One failure after a good connection is a blip ("connecting"); more is offline.
    this.setStatus(this.failures > 1 || failure?.code === 'server_unreachable' ? 'offline' : 'connecting', error);
    const base = Math.max(retryMs, this.options.initialBackoffMs ?? 500);
    const ceiling = Math.min(this.options.maxBackoffMs ?? 30_000, base * 2 ** Math.min(this.failures - 1, 16));
    const delay = Math.round(ceiling / 2 + (this.options.random ?? Math.random)() * (ceiling / 2));
    this.waiting = true;
    this.timer = this.options.clock.setTimer(() => void this.connect(), delay);
  }

  private message(message: EventSourceMessage): void {
    let parsed: ReturnType<typeof ServerEventEnvelope.safeParse>;
    try {
      parsed = ServerEventEnvelope.safeParse(JSON.parse(message.data));
    } catch (cause) {
      this.options.onProblem?.(new AgentError('malformed_response', 'The server sent an event that is not JSON; it was skipped.', cause));
      if (message.id) this.lastEventId = message.id;
      return;
    }
    if (message.id) this.lastEventId = message.id;
    if (!parsed.success) {
      this.options.onProblem?.(new AgentError('malformed_response', 'The server sent an event Stint does not understand; it was skipped.', parsed.error));
      return;
    }
    this.options.onEvent(parsed.data);
  }
}
