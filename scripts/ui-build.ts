// Whether `npm start` must build the UI again: the built pages are older than what they are built from. Checking
// only that a build exists served the UI of the first run after a `git pull` (the admin console, the approve page's
// fixes… missing from a demo whose server already had them).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** What Vite builds dist/renderer from (vite.config.ts: the renderer, the contracts it imports, the config itself). */
const SOURCES = ['renderer', 'shared', 'vite.config.ts', 'package-lock.json'];
const PAGES = ['dist/renderer/index.html', 'dist/renderer/approve.html', 'dist/renderer/admin.html'];

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/** Why the UI must be built (no build, or a source newer than it), or undefined when the build is current. */
export function uiBuildReason(root: string): string | undefined {
  const pages = PAGES.map((p) => join(root, p));
  const missing = pages.find((p) => !existsSync(p));
  if (missing) return 'no build yet';
  const built = Math.min(...pages.map((p) => statSync(p).mtimeMs));
  const changed = SOURCES.find((s) => newestMtime(join(root, s)) > built);
  return changed ? `${changed} changed since the last build` : undefined;
}
