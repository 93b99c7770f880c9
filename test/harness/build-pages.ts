// The grant server serves pages built by Vite (dist/renderer: the approve page, the admin console). Server tests that
// fetch them need the build; a fresh clone has none until Playwright's setup builds it, which runs after Vitest in
// `npm test`. Build once here when the pages are missing, so `npx vitest run` works from a clean clone too.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { DEFAULT_PAGE_DIR } from '../../server/web/page-files';

export default function setup(): void {
  const pages = readdirSync(new URL('../../renderer/', import.meta.url)).filter((name) => name.endsWith('.html'));
  if (pages.every((page) => existsSync(`${DEFAULT_PAGE_DIR}${page}`))) return;
  execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], { stdio: 'inherit' });
}
