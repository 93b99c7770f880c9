// The preload cannot run here (it needs Electron's contextBridge), and its `satisfies` check only helps where it is
// type-checked; this guards the same promise from the source: one explicit function per AgentApi method, on the
// method's own channel, and no generic invoke/send reaching the page.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { agentApi } from '../../shared/contract/agent';

const source = readFileSync('desktop/preload/index.ts', 'utf8');

describe('preload', () => {
  it('exposes exactly one function per AgentApi method', () => {
    const exposed = [...source.matchAll(/^\s+(\w+): call\('(\w+)'\),$/gm)].map((m) => [m[1], m[2]]);
    expect(exposed.every(([name, method]) => name === method)).toBe(true);
    expect(exposed.map(([name]) => name).sort()).toEqual(Object.keys(agentApi).sort());
  });

  it('invokes only stint:<method> channels and exposes no raw ipcRenderer', () => {
    expect([...source.matchAll(/ipcRenderer\.(\w+)\(/g)].map((m) => m[1]).sort()).toEqual(['invoke', 'on', 'removeListener']);
    expect(source).toContain('ipcRenderer.invoke(`stint:${method}`, input)');
    expect(source).toMatch(/ipcRenderer\.on\('stint:event', handler\)/);
    expect(source).not.toMatch(/exposeInMainWorld\([^)]*ipcRenderer/);
  });
});
