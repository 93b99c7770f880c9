// OpenAPI 3.1, generated from the same zod schemas that parse requests (z.toJSONSchema, JSON Schema 2020-12).
// Served at /v1/openapi.json and committed as docs/openapi.json (`stint-server openapi --out docs/openapi.json`).
import { z } from 'zod';
import { Problem } from '../../shared/contract/http';
import { ServerEventEnvelope } from '../../shared/contract/events';
import type { RouteSpec } from './routes';

const schemaOf = (schema: z.ZodType, io: 'input' | 'output') => {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  delete json.$schema;
  return json;
};

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const STATUS_TEXT: Record<number, string> = {
  400: 'Malformed input (bad JSON, wrong types, unknown fields)', 401: 'Missing, expired, forged or wrong-audience token',
  403: 'Not allowed for the caller', 404: 'No such thing for the caller', 409: 'Not possible in the current state',
  410: 'Gone (expired)', 413: 'Body too large', 415: 'Not JSON', 422: 'Breaks a policy rule', 429: 'Too many attempts', 503: 'A dependency is unavailable',
};

export function openApiDocument(routes: RouteSpec[], options: { serverUrl?: string; version?: string } = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of routes) {
    const path = spec.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters: unknown[] = [];
    if (spec.url.includes(':id')) parameters.push({ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]+$', maxLength: 128 } });
    if (spec.query) {
      const q = schemaOf(spec.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {})) parameters.push({ name, in: 'query', required: (q.required ?? []).includes(name) && !(schema as { default?: unknown }).default, schema });
    }
    if (spec.method === 'POST') parameters.push({ name: 'Idempotency-Key', in: 'header', required: false, description: 'Replays the first answer for the same key and body; a different body with the same key is a 422.', schema: { type: 'string', maxLength: 200 } });
    const responses: Record<string, unknown> = {
      [String(spec.status ?? 200)]: { description: 'OK', content: { 'application/json': { schema: schemaOf(spec.response, 'output') } } },
      400: problemResponse(STATUS_TEXT[400]!),
      401: problemResponse(STATUS_TEXT[401]!),
    };
    for (const status of spec.problems ?? []) responses[status] = problemResponse(STATUS_TEXT[status] ?? 'Problem');
    if (spec.method === 'POST') responses[413] = problemResponse(STATUS_TEXT[413]!);
    paths[path] ??= {};
    paths[path]![spec.method.toLowerCase()] = {
      operationId: spec.operationId,
      summary: spec.summary,
      tags: spec.tags,
      security: [{ bearer: [] }],
      ...(parameters.length ? { parameters } : {}),
      ...(spec.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(spec.body, 'input') } } } } : {}),
      responses,
    };
  }
  paths['/v1/events'] = {
    get: {
      operationId: 'streamEvents',
      summary: 'Server-Sent Events for the caller: their requests and grants, approval asks for approvers. Resume with Last-Event-ID.',
      tags: ['events'],
      security: [{ bearer: [] }],
      parameters: [{ name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string', pattern: '^[0-9]+$' } }],
      responses: {
        200: { description: 'An event stream; each `data:` line is one envelope', content: { 'text/event-stream': { schema: schemaOf(ServerEventEnvelope, 'output') } } },
        401: problemResponse(STATUS_TEXT[401]!),
      },
    },
  };
  for (const [path, summary] of [['/healthz', 'Liveness'], ['/readyz', 'Readiness (storage reachable)']] as const) {
    paths[path] = { get: { operationId: path.slice(1), summary, tags: ['ops'], responses: { 200: { description: 'OK' }, 503: problemResponse('Not ready') } } };
  }
  paths['/metrics'] = { get: { operationId: 'metrics', summary: 'Prometheus metrics', tags: ['ops'], responses: { 200: { description: 'text/plain exposition format' } } } };
  return {
    openapi: '3.1.0',
    info: { title: 'Stint grant server', version: options.version ?? '1', description: 'Just-in-time privileged database access: requests, approvals, grants, audit and live events.' },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from the configured IdP for the configured audience' } },
      schemas: { Problem: schemaOf(Problem, 'output') },
    },
  };
}
