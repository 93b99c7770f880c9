// `npm start` builds the UI again when what it is built from changed: after a `git pull` the demo served the first
// run's pages (no admin console) from a server that already had the new routes.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uiBuildReason } from '../../scripts/ui-build';

let root: string;
afterEach(() => rmSync(root, { recursive: true, force: true }));

function file(path: string, at: number): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), 'x');
  utimesSync(join(root, path), at / 1000, at / 1000);
}

describe('npm start: is the built UI current?', () => {
  const t0 = Date.parse('2026-12-01T10:00:00Z');
  function checkout(): void {
    root = mkdtempSync(join(tmpdir(), 'stint-ui-build-'));
    file('renderer/src/App.tsx', t0);
    file('shared/contract/agent.ts', t0);
    file('vite.config.ts', t0);
  }

  it('builds when there is no build, or only half of one', () => {
    checkout();
    expect(uiBuildReason(root)).toBe('no build yet');
    file('dist/renderer/index.html', t0 + 60_000);
    expect(uiBuildReason(root)).toBe('no build yet');
  });

  it('keeps a build newer than every source, and builds again after a pull changed the renderer or the contracts', () => {
    checkout();
    file('dist/renderer/index.html', t0 + 60_000);
    file('dist/renderer/approve.html', t0 + 60_000);
    expect(uiBuildReason(root)).toBe('no build yet'); // a build from before the admin console's page
    file('dist/renderer/admin.html', t0 + 60_000);
    expect(uiBuildReason(root)).toBeUndefined();
    file('renderer/src/views/Admin.tsx', t0 + 120_000);
    expect(uiBuildReason(root)).toBe('renderer changed since the last build');
    file('dist/renderer/index.html', t0 + 180_000);
    file('dist/renderer/approve.html', t0 + 180_000);
    file('dist/renderer/admin.html', t0 + 180_000);
    file('shared/contract/admin.ts', t0 + 240_000);
    expect(uiBuildReason(root)).toBe('shared changed since the last build');
  });
});
