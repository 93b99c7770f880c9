// The committed OpenAPI document is the one the route list and its schemas generate (regenerate with
// `npx tsx server/main.ts openapi --out docs/openapi.json`), and it describes every route the server can serve.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { openApiDocument } from '../../server/http/openapi';
import { documentedRoutes } from '../../server/http/table';

describe('OpenAPI', () => {
  const generated = openApiDocument(documentedRoutes()) as { paths: Record<string, Record<string, any>> };

  it('docs/openapi.json is up to date with the schemas', () => {
    const committed = JSON.parse(readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(generated)));
  });

  it('documents strict request bodies and problem answers', () => {
    const create = generated.paths['/v1/requests']!.post;
    const schema = create.requestBody.content['application/json'].schema;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['resourceId', 'level']);
    expect(create.responses['201']).toBeDefined();
    expect(create.responses['401'].content['application/problem+json']).toBeDefined();
    expect(generated.paths['/v1/requests/{id}/approve']!.post.parameters[0]).toMatchObject({ name: 'id', in: 'path', required: true });
    expect(generated.paths['/v1/requests']!.get.parameters.map((p: { name: string }) => p.name)).toEqual(['role', 'state', 'limit']);
  });

  it('says who may call each route, from its declared access', () => {
    expect(generated.paths['/healthz']!.get.security).toBeUndefined();
    expect(generated.paths['/v1/grants/{id}/revoke']!.post.security).toEqual([{ bearer: [] }]);
    expect(generated.paths['/v1/grants/{id}/revoke']!.post.responses['403']).toBeDefined();
    expect(generated.paths['/v1/stepup/totp/remove']!.post).toMatchObject({ security: [{ bearer: [] }], responses: { 204: {}, 401: {} } });
    expect(generated.paths['/v1/bastion/authorized-keys']!.get).toMatchObject({ security: [{ bastion: [] }], responses: { 401: { description: expect.stringContaining('bastion token') } } });
  });
});
