// Per-grant files that let ordinary database clients connect with no password typed or pasted (a libpq passfile, a
// client option file: see agent/core/kinds), 0600 in a 0700 folder of the agent's own data dir, that the command
// the UI copies points at. The password is on disk only while the grant's tunnel is open: wiped with the grant's
// other secrets at its end, and on start any left by a crashed run are removed before anything else happens.
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class ClientFiles {
  constructor(private readonly dir: string) {}

  private grantDir(grantId: string): string {
    // Grant ids are server-made; refuse anything that could step outside our folder.
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(grantId) || /^\.+$/.test(grantId)) throw new Error(`unexpected grant id ${JSON.stringify(grantId)}`);
    return join(this.dir, grantId);
  }

  /** Write one of the grant's files (readable by this user only: clients ignore others) and return its path. */
  async write(grantId: string, name: string, text: string): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const dir = this.grantDir(grantId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new Error(`unexpected file name ${JSON.stringify(name)}`);
    const path = join(dir, name);
    await writeFile(path, text, { mode: 0o600 });
    await chmod(path, 0o600);
    return path;
  }

  async wipe(grantId: string): Promise<void> {
    await rm(this.grantDir(grantId), { recursive: true, force: true });
  }

  /** Remove every grant's files: on start, when this process holds no grant yet. */
  async wipeAll(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
