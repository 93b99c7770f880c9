// The demo's and the tests' services die with whoever started them: a `npm start` killed with kill -9 must not leave
// PostgreSQL, sshd or the keyring running (issue #21).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { isAlive } from '../../dev/run-dir';

describe('dev services', () => {
  it('die with the process that started them, even when it is killed with SIGKILL', async () => {
    // A stand-in for `npm start`: a Node process that starts a service the way the demo does, prints its pid, waits.
    const script = [
      "import { startProcess } from './dev/process.ts';",
      "const service = startProcess('/bin/sleep', ['300']);",
      'console.log(service.child.pid);',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const starter = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = await once(starter.stdout!, 'data') as [Buffer];
    const servicePid = Number(line.toString().trim());
    expect(isAlive(servicePid)).toBe(true);
    starter.kill('SIGKILL');
    await once(starter, 'exit');
    await expect.poll(() => isAlive(servicePid), { timeout: 3_000 }).toBe(false);
  });
});
