#!/usr/bin/env node
// Runs @doyensec/electronegativity over desktop/ (the Electron shell) and fails on any HIGH or MEDIUM finding that docs/security.md does
// not justify. A justification is a line in that file's "Electronegativity findings" list naming the check id and
// the file, e.g. "- `PRELOAD_JS_CHECK` in `main/window.ts`: …". Its online release check finds no network here and is skipped by the tool itself.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field.trim()); field = ''; }
    else if (c === '\n') { row.push(field.trim()); rows.push(row); row = []; field = ''; }
    else field += c;
  }
  if (field || row.length) { row.push(field.trim()); rows.push(row); }
  return rows;
}

function check(out) {
  const run = spawnSync('npx', ['electronegativity', '-i', 'desktop', '-e', '45.0.0', '-r', '-o', out], { encoding: 'utf8' });
  if (run.status !== 0) {
    console.error(run.stdout, run.stderr);
    return 1;
  }
  const [, ...rows] = parseCsv(readFileSync(out, 'utf8')).filter((r) => r.length >= 5);
  const justified = readFileSync('docs/security.md', 'utf8');
  let failures = 0;
  for (const [id, severity, confidence, file, location] of rows) {
    const serious = severity === 'HIGH' || severity === 'MEDIUM';
    const ok = !serious || justified.includes(`\`${id}\` in \`${file}\``);
    if (!ok) failures++;
    console.log(`${ok ? (serious ? 'justified' : 'low      ') : 'FINDING  '} ${severity}/${confidence} ${id} ${file}:${location}`);
  }
  console.log(`electronegativity: ${rows.length} finding(s), ${failures} unjustified high/medium`);
  return failures ? 1 : 0;
}

const dir = mkdtempSync(join(tmpdir(), 'stint-eneg-'));
try {
  process.exitCode = check(join(dir, 'findings.csv'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
