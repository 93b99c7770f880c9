// A webhook receiver on loopback (node:http), for the tests and the demo: it checks each delivery's Standard Webhooks
// signature with the `standardwebhooks` verifier, answers 401 to a bad one, may fail the first tries of each message
// on purpose (503), and keeps every attempt so a test can count them by webhook-id.
import { createServer, type IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

export interface ReceivedAttempt {
  webhookId: string;
  at: number;
  /** What the receiver answered. */
  status: number;
  verified: boolean;
  body: unknown;
}

export interface WebhookReceiver {
  url: string;
  /** The signing secret (`whsec_…`) the server must be configured with. */
  secret: string;
  attempts: ReceivedAttempt[];
  /** The verified events it accepted (2xx), in arrival order. */
  accepted(): ReceivedAttempt[];
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** Answer 503 to the first this-many attempts of every message. */
  failFirst?: number;
  /** Called for each accepted event (the demo prints it). */
  onEvent?: (body: unknown, webhookId: string) => void;
  secret?: string;
  /** Listen here (default: a free port). */
  port?: number;
}

/** A fresh Standard Webhooks secret: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

export async function startWebhookReceiver(options: ReceiverOptions = {}): Promise<WebhookReceiver> {
  const secret = options.secret ?? newWebhookSecret();
  const verifier = new Webhook(secret);
  const attempts: ReceivedAttempt[] = [];
  const triesById = new Map<string, number>();
  const server = createServer((request, response) => {
    void readBody(request).then((text) => {
      const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v ?? '']));
      const webhookId = headers['webhook-id'] ?? '';
      let body: unknown;
      let verified = false;
      try {
        body = verifier.verify(text, headers);
        verified = true;
      } catch {
        body = text;
      }
      const tries = (triesById.get(webhookId) ?? 0) + 1;
      triesById.set(webhookId, tries);
      const status = !verified ? 401 : tries <= (options.failFirst ?? 0) ? 503 : 204;
      attempts.push({ webhookId, at: Date.now(), status, verified, body });
      if (status === 204) options.onEvent?.(body, webhookId);
      response.writeHead(status).end();
    }, () => {
      // The sender went away mid-body (or the receiver is closing): nothing was received.
      response.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    secret,
    attempts,
    accepted: () => attempts.filter((a) => a.status === 204),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
