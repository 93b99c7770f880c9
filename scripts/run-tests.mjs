#!/usr/bin/env node
// `npm test`: lint (the layering rules live there), type-check (also the Electron shell against Electron's typings),
// Vitest (unit + integration against real services), then Playwright in Chromium. Every stage runs even when an
// earlier one failed, so one run shows everything that is wrong; the exit code is non-zero if any stage failed.
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdirSync, rmSync } from 'node:fs';
import { stripVTControlCharacters } from 'node:util';

const results = [];
let passed = 0;
let failed = 0;
let skipped = 0;

function stage(name, command, args, env = {}) {
  console.log(`\n=== ${name}: ${command} ${args.join(' ')}`);
  const started = Date.now();
  const run = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  const ok = run.status === 0;
  results.push({ name, ok, seconds: Math.round((Date.now() - started) / 1000) });
  return ok;
}

function readJson(path) {
  try { return JSON.parse(readFileSync(path, 'utf8')); } catch { return undefined; }
}

mkdirSync('test-results', { recursive: true });
for (const f of ['test-results/vitest.json', 'test-results/e2e.json']) rmSync(f, { force: true });

stage('lint', 'npx', ['eslint', '--max-warnings', '0', '.']);
stage('typecheck', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);
stage('typecheck (electron shell)', 'npx', ['tsc', '-p', 'desktop/tsconfig.json', '--noEmit']);
stage('electronegativity', 'node', ['scripts/electronegativity.mjs']);
stage('vitest', 'npx', ['vitest', 'run', '--reporter=default', '--reporter=json', '--outputFile.json=test-results/vitest.json']);
stage('playwright', 'npx', ['playwright', 'test'], { CI: '1' });

const vitest = readJson('test-results/vitest.json');
if (vitest) {
  passed += vitest.numPassedTests ?? 0;
  failed += vitest.numFailedTests ?? 0;
  skipped += (vitest.numPendingTests ?? 0) + (vitest.numTodoTests ?? 0);
  console.log(`\nvitest: ${vitest.numPassedTests} passed, ${vitest.numFailedTests} failed, ${vitest.numPendingTests} skipped`);
} else {
  console.log('\nvitest: no report (the run did not finish)');
}
const e2e = readJson('test-results/e2e.json');
if (e2e?.stats) {
  const s = e2e.stats;
  passed += s.expected ?? 0;
  failed += (s.unexpected ?? 0) + (s.flaky ?? 0);
  skipped += s.skipped ?? 0;
  console.log(`playwright: ${s.expected} passed, ${(s.unexpected ?? 0) + (s.flaky ?? 0)} failed, ${s.skipped} skipped`);
} else {
  console.log('playwright: no report (the run did not finish)');
}
// CI keeps only the tail of the output, so the names of failed tests (and the first line of why) go last.
for (const line of failedTests(vitest, e2e)) console.log(line);
for (const r of results) console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${r.seconds}s)`);
function firstLine(text) {
  const line = stripVTControlCharacters(String(text ?? '')).split('\n').find((l) => l.trim()) ?? '';
  return line.trim().slice(0, 300);
}

function failedTests(vitestReport, e2eReport) {
  const lines = [];
  for (const file of vitestReport?.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      if (t.status !== 'failed') continue;
      lines.push(`failed: ${file.name.replace(process.cwd() + '/', '')} › ${t.fullName}`);
      lines.push(`        ${firstLine(t.failureMessages?.[0])}`);
    }
    if (file.status === 'failed' && !(file.assertionResults ?? []).some((t) => t.status === 'failed')) {
      lines.push(`failed: ${file.name.replace(process.cwd() + '/', '')} (the file itself)`);
      lines.push(`        ${firstLine(file.message)}`);
    }
  }
  const walk = (suite, titles) => {
    for (const spec of suite.specs ?? []) {
      for (const test of spec.tests ?? []) {
        if (test.status === 'expected' || test.status === 'skipped') continue;
        const error = test.results?.find((r) => r.error)?.error;
        lines.push(`${test.status}: ${spec.file}:${spec.line} › ${[...titles, spec.title].join(' › ')}`);
        lines.push(`        ${firstLine(error?.message)}`);
      }
    }
    for (const child of suite.suites ?? []) walk(child, [...titles, child.title].filter(Boolean));
  };
  for (const suite of e2eReport?.suites ?? []) walk(suite, []);
  return lines;
}

const stagesFailed = results.filter((r) => !r.ok).length;
if (stagesFailed && failed === 0) failed = stagesFailed; // a failing lint/typecheck stage counts as a failure
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(stagesFailed ? 1 : 0);
