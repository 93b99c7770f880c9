// The import rules of the design note are enforced by lint. These tests lint deliberate violations placed in each
// layer and check that lint fails naming the rule, so a rule that silently stopped matching would be noticed.
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

const eslint = new ESLint({ cwd: process.cwd() });

async function lint(filePath: string, code: string) {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.filter((m) => m.severity === 2).map((m) => `${m.ruleId}: ${m.message}`);
}

describe('layering rules', () => {
  it('the agent (core, web host, CLI) may not import electron: it runs under plain Node', async () => {
    for (const file of ['agent/core/__violation.ts', 'agent/web/__violation.ts', 'agent/cli/__violation.ts']) {
      const errors = await lint(file, "import { app } from 'electron';\nexport const x = app;\n");
      expect(errors.join('\n'), file).toMatch(/no-restricted-imports: .*Only desktop\/ \(the Electron shell\) may import electron/);
    }
  });

  it('agent/core may not import server/ nor its own hosts', async () => {
    const errors = await lint('agent/core/__violation.ts', "import { DEMO_USERS } from '../../server/dev-idp/index';\nexport const x = DEMO_USERS;\n");
    expect(errors.join('\n')).toMatch(/import-x\/no-restricted-paths: .*agent\/core may import only shared/);
    const upward = await lint('agent/core/__violation.ts', "import { startWebHost } from '../web/host';\nexport const x = startWebHost;\n");
    expect(upward.join('\n')).toMatch(/agent\/core may import only shared/);
  });

  it('the web host and the CLI do not import each other, nor the desktop shell', async () => {
    const errors = await lint('agent/web/__violation.ts', "import { runCli } from '../cli/main';\nexport const x = runCli;\n");
    expect(errors.join('\n')).toMatch(/agent\/web \(the web host\) may import only agent\/core and shared/);
    const shell = await lint('agent/cli/__violation.ts', "import { createMainWindow } from '../../desktop/main/window';\nexport const x = createMainWindow;\n");
    expect(shell.join('\n')).toMatch(/agent\/cli may import only agent\/core and shared/);
  });

  it('renderer may not import Node built-ins', async () => {
    const errors = await lint('renderer/src/__violation.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n");
    expect(errors.join('\n')).toMatch(/import-x\/no-nodejs-modules/);
  });

  it('renderer may not import the Electron shell', async () => {
    const errors = await lint('renderer/src/__violation.ts', "import * as core from '../../desktop/main/window';\nexport const x = core;\n");
    expect(errors.join('\n')).toMatch(/import-x\/no-restricted-paths: .*renderer\/ reaches the agent only through the AgentApi/);
  });

  it('shared/ may import only zod', async () => {
    const errors = await lint('shared/domain/__violation.ts', "import Fastify from 'fastify';\nexport const x = Fastify;\n");
    expect(errors.join('\n')).toMatch(/no-restricted-imports: .*shared\/ may import only zod/);
  });

  it('only the renderer may use the DOM', async () => {
    const errors = await lint('server/__violation.ts', 'export const title = document.title;\n');
    expect(errors.join('\n')).toMatch(/no-restricted-globals: .*Only renderer\/ may use the DOM/);
  });

  it('nothing outside test/ imports from test/ (the demo once did, and crashed where no test had run)', async () => {
    const errors = await lint('scripts/__violation.ts', "import { startStack } from '../test/harness/stack';\nexport const x = startStack;\n");
    expect(errors.join('\n')).toMatch(/import-x\/no-restricted-paths: .*Only test\/ may import from test\//);
    const fromDev = await lint('dev/__violation.ts', "import { startStack } from '../test/harness/stack';\nexport const x = startStack;\n");
    expect(fromDev.join('\n')).toMatch(/Only test\/ may import from test\//);
  });

  it('benchmarks may not import from test/: they measure the real server and agent, never a test stand-in', async () => {
    const errors = await lint('bench/__violation.ts', "import { MemorySecretStore } from '../test/agent/memory-secrets';\nexport const x = MemorySecretStore;\n");
    expect(errors.join('\n')).toMatch(/import-x\/no-restricted-paths: .*Only test\/ may import from test\//);
    expect(await lint('bench/__ok.ts', "import { startAgentBackend } from '../dev/agent-backend';\nexport const x = startAgentBackend;\n")).toEqual([]);
  });

  it('the product may not import dev/ tooling', async () => {
    const errors = await lint('server/__violation.ts', "import { startPostgres } from '../dev/postgres';\nexport const x = startPostgres;\n");
    expect(errors.join('\n')).toMatch(/import-x\/no-restricted-paths: .*The product may not import dev\//);
  });

  it('tests and the demo may use dev/', async () => {
    expect(await lint('test/harness/__ok.ts', "import { startPostgres } from '../../dev/postgres';\nexport const x = startPostgres;\n")).toEqual([]);
    expect(await lint('scripts/__ok.ts', "import { startPostgres } from '../dev/postgres';\nexport const x = startPostgres;\n")).toEqual([]);
  });

  it('allowed imports pass', async () => {
    expect(await lint('agent/web/__ok.ts', "import { z } from 'zod';\nimport { Grant } from '../../shared/contract/http';\nexport const x = [z, Grant];\n")).toEqual([]);
  });
});
