// What the agent benchmarks run against: PostgreSQL, a keychain, the OpenSSH bastion and the stand-in grant server
// from the agent tests. Each piece's stop goes onto `stops` for the benchmark's own teardown.
import { startPostgres } from '../../dev/postgres';
import { startSshd } from '../../dev/sshd';
import { startKeyring } from '../../dev/keyring';
import { startFakeGrantServer } from '../../test/agent/fake-grant-server';

export async function startAgentBackend(stops: Array<() => Promise<unknown>>) {
  const [db, keyring] = await Promise.all([startPostgres(), startKeyring()]);
  stops.push(() => db.stop(), () => keyring.stop());
  Object.assign(process.env, keyring.env);
  const sshd = await startSshd({ permitOpen: [`127.0.0.1:${db.port}`] });
  stops.push(() => sshd.stop());
  const server = await startFakeGrantServer(db, sshd);
  stops.push(async () => server.kill());
  return { db, sshd, server };
}
