// Docs that run: every fenced block in README.md, docs/user.md and docs/admin.md is executed or checked here, or is
// marked as an illustration on purpose (```sh illustration) — and every repository path they name exists. A doc
// that promises a command or a file the repository does not have fails the build, as a newcomer would have.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import { parseConfig } from '../../server/config';

const DOCS = ['README.md', 'docs/user.md', 'docs/admin.md'];

interface Block { doc: string; info: string; text: string; line: number }

function blocks(doc: string): Block[] {
  const out: Block[] = [];
  const lines = readFileSync(doc, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!);
    out.push({ doc, info: open[1]!.trim(), text: body.join('\n'), line: start + 1 });
  }
  return out;
}

/**
 * Commands that cannot run inside the test run (they start or are the test run), with the test that runs them as
 * a user would. Each entry is checked: the named file really runs the command.
 */
const RUN_ELSEWHERE: Record<string, { file: string; proof: RegExp }> = {
  'npm run up': { file: 'test/e2e/demo.spec.ts', proof: /spawn\('npm', \['start'\]/ }, // after build/setup.sh, which .ci/run runs
  'npm run test:all': { file: '.ci/run', proof: /^npm run test:all$/m },
};

// The secrets docs/config.example.yaml refers to, as an operator (or `npm start`) sets them.
const EXAMPLE_ENV = {
  STINT_DEMO_TOTP_KEY: 'docs-test-totp-key-0123456789abcdef',
  STINT_DEMO_BASTION_TOKEN: 'docs-test-bastion-token',
  STINT_DEMO_HOST_TOKEN: 'docs-test-host-token',
  STINT_DEMO_ORDERS_ADMIN: 'postgres://admin:pw@127.0.0.1:7832/orders',
  STINT_DEMO_USERS_ADMIN: 'postgres://admin:pw@127.0.0.1:7832/users',
  STINT_DEMO_SHOP_ADMIN: 'mysql://admin:pw@127.0.0.1:7833/',
};

const commandLines = (text: string) => text.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l && !l.startsWith('#'));
const all = DOCS.flatMap(blocks);

describe('docs that run', () => {
  it('every block is shell, YAML or marked as an illustration', () => {
    const unknown = all.filter((b) => !['sh', 'sh illustration', 'js illustration', 'yaml'].includes(b.info)).map((b) => `${b.doc}:${b.line} (${b.info || 'no language'})`);
    expect(unknown).toEqual([]);
    expect(all.filter((b) => b.info === 'sh').length).toBeGreaterThanOrEqual(4);
  });

  for (const block of all.filter((b) => b.info === 'sh')) {
    for (const command of commandLines(block.text)) {
      it(`${block.doc}:${block.line} runs: ${command}`, async () => {
        const elsewhere = RUN_ELSEWHERE[command];
        if (elsewhere) {
          expect(readFileSync(elsewhere.file, 'utf8')).toMatch(elsewhere.proof);
          return;
        }
        const run = await promisify(execFile)('bash', ['-c', command], { env: { ...process.env, ...EXAMPLE_ENV }, timeout: 60_000 }).catch((error) => error);
        expect(run.code ?? 0, `${command}\n${run.stderr ?? ''}`).toBe(0);
        expect(run.stdout.trim().length).toBeGreaterThan(0);
      }, 90_000);
    }
  }

  it('each YAML block is valid configuration in the complete example', () => {
    const yamlBlocks = all.filter((b) => b.info === 'yaml');
    expect(yamlBlocks.length).toBeGreaterThan(0);
    for (const block of yamlBlocks) {
      const example = parseDocument(readFileSync('docs/config.example.yaml', 'utf8')).toJSON() as Record<string, unknown>;
      const fragment = parseDocument(block.text).toJSON() as Record<string, Record<string, unknown>>;
      // A fragment replaces the entries it names (e.g. policies by name) in the example it is read against.
      for (const [key, value] of Object.entries(fragment)) {
        example[key] = value && typeof value === 'object' && !Array.isArray(value) ? { ...(example[key] as object), ...value } : value;
      }
      expect(() => parseConfig(JSON.stringify(example), `${block.doc}:${block.line}`)).not.toThrow();
    }
  });

  it('every repository path the docs name exists', () => {
    const missing: string[] = [];
    for (const doc of DOCS) {
      for (const m of readFileSync(doc, 'utf8').matchAll(/`((?:\.\.\/)?(?:docs|server|scripts|electron|renderer|shared|dev|bench|build|test|bin)\/[^`\s]*)`/g)) {
        const path = m[1]!.replace(/[.,:;]$/, '');
        if (!existsSync(path)) missing.push(`${doc}: ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
