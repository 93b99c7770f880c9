// OpenAPI 3.1, generated from the route list (http/table.ts) — the same declarations the router serves — and from the
// zod schemas that parse requests (z.toJSONSchema, JSON Schema 2020-12). Each route's security follows from its
// declared access. Served at /v1/openapi.json and committed as docs/openapi.json (`stint-server openapi --out
// docs/openapi.json`).
import { z } from 'zod';
import { Problem } from '../../shared/contract/http';
import type { Answer, Route } from './router';

const schemaOf = (schema: z.ZodType, io: 'input' | 'output') => {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  delete json.$schema;
  return json;
};

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const answer = (a: Answer) => ({
  description: a.description,
  ...(a.type ? { content: { [a.type]: a.schema ? { schema: schemaOf(a.schema, 'output') } : {} } } : {}),
});

const STATUS_TEXT: Record<number, string> = {
  400: 'Malformed input (bad JSON, wrong types, unknown fields)', 401: 'Missing, expired, forged or wrong-audience token',
  403: 'Not allowed for the caller', 404: 'No such thing for the caller', 409: 'Not possible in the current state',
  410: 'Gone (expired)', 413: 'Body too large', 415: 'Not JSON', 422: 'Breaks a policy rule', 429: 'Too many attempts', 503: 'A dependency is unavailable',
};

const ID_SCHEMA = { type: 'string', pattern: '^[A-Za-z0-9_.:-]+$', maxLength: 128 };

function operation(route: Route): Record<string, unknown> {
  const doc = route.doc;
  const parameters: unknown[] = [];
  for (const [, name] of route.url.matchAll(/:([A-Za-z]+)/g)) {
    const schema = doc.params?.[name!];
    parameters.push({ name, in: 'path', required: true, schema: schema ? schemaOf(schema, 'input') : ID_SCHEMA });
  }
  if (doc.query) {
    const q = schemaOf(doc.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) parameters.push({ name, in: 'query', required: (q.required ?? []).includes(name) && !(schema as { default?: unknown }).default, schema });
  }
  for (const header of doc.headers ?? []) parameters.push({ name: header.name, in: 'header', required: false, schema: header.schema });
  if (doc.idempotent) parameters.push({ name: 'Idempotency-Key', in: 'header', required: false, description: 'Replays the first answer for the same key and body; a different body with the same key is a 422.', schema: { type: 'string', maxLength: 200 } });

  const responses: Record<string, unknown> = {
    [String(doc.status ?? 200)]: doc.response instanceof z.ZodType
      ? { description: 'OK', content: { 'application/json': { schema: schemaOf(doc.response, 'output') } } }
      : answer(doc.response),
  };
  for (const problem of doc.problems ?? []) {
    const [status, description] = typeof problem === 'number' ? [problem, STATUS_TEXT[problem] ?? 'Problem'] : problem;
    responses[status] = problemResponse(description);
  }
  // What the router's checks answer, from the declared access.
  if (route.access === 'user' || route.access === 'user_or_service' || route.access === 'admin') responses[401] = problemResponse(STATUS_TEXT[401]!);
  if (route.access === 'user') responses[403] ??= problemResponse(STATUS_TEXT[403]!);
  if (route.access === 'admin') responses[403] ??= problemResponse(STATUS_TEXT[403]!);
  if (route.access === 'bastion') responses[401] = { description: 'Missing or unknown bastion token (empty body)' };
  if (route.access === 'session' || route.access === 'admin-session') {
    responses[401] = problemResponse('No page session, or it expired: open the approve link (or /admin) to sign in');
    if (route.method === 'POST') responses[403] ??= problemResponse('Not allowed for the caller, or the CSRF token is missing or wrong');
    if (route.access === 'admin-session') responses[403] ??= problemResponse('Not an administrator');
  }
  for (const [status, other] of Object.entries(doc.answers ?? {})) responses[status] = answer(other);

  const scheme = route.access === 'bastion' ? 'bastion' : route.access === 'session' || route.access === 'admin-session' ? 'session' : 'bearer';
  const security = route.access === 'anonymous' ? undefined : [{ [scheme]: [] }];
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    tags: doc.tags,
    // Who may call it beyond the token: people only, people and service identities (CI jobs, bots), or admins.
    ...(security && route.access !== 'bastion' ? { 'x-stint-callers': route.access === 'user_or_service' ? 'people and services' : route.access === 'admin' || route.access === 'admin-session' ? 'administrators' : 'people' } : {}),
    ...(security ? { security } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(doc.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(doc.body, 'input') } } } } : {}),
    responses,
  };
}

export function openApiDocument(routes: readonly Route[], options: { serverUrl?: string; version?: string } = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
    paths[path] ??= {};
    paths[path]![route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Stint grant server', version: options.version ?? '1', description: 'Just-in-time privileged database access: requests, approvals, grants, audit and live events.' },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from the configured IdP for the configured audience' },
        ...(routes.some((r) => r.access === 'bastion') ? { bastion: { type: 'http', scheme: 'bearer', description: "A bastion's own token (bastions.<id>.token in the server config)" } } : {}),
        ...(routes.some((r) => r.access === 'session' || r.access === 'admin-session') ? { session: { type: 'apiKey', in: 'cookie', name: 'stint_approve_session', description: 'The approve page\'s and the admin console\'s session (after signing in at /approve/<id> or /admin); POSTs also send its CSRF token in x-stint-csrf' } } : {}),
      },
      schemas: { Problem: schemaOf(Problem, 'output') },
    },
  };
}
