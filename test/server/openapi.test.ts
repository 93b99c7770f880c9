// The committed OpenAPI document is the one the schemas generate (regenerate with
// `npx tsx server/main.ts openapi --out docs/openapi.json`), and it describes every /v1 route the server has.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { openApiDocument } from '../../server/http/openapi';
import { apiRoutes } from '../../server/http/routes';
import type { Lifecycle } from '../../server/lifecycle/service';

describe('OpenAPI', () => {
  const generated = openApiDocument(apiRoutes(null as unknown as Lifecycle)) as { paths: Record<string, Record<string, any>> };

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
});
