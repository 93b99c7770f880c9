// Benchmark: our tunnel (ssh2 in this process) against OpenSSH `ssh -N -L` through the same harness sshd, to the same
// PostgreSQL, in the same run. Throughput is measured by external programs (psql, and child Node processes as raw TCP
// source and sink), so this process does only what the agent does: run the tunnel.
//   copy_ratio_vs_openssh  psql `COPY … TO STDOUT` MB/s through ours ÷ through OpenSSH   (target ≥ 1.0)
//   raw_ratio_vs_openssh   raw TCP MB/s through ours ÷ through OpenSSH                   (target ≥ 1.0)
//   pgbench_tps_ratio_vs_openssh   `pgbench -S`, 8 clients: tps through ours ÷ through OpenSSH   (target ≥ 1.0)
//   pgbench_client_us_per_tx / pgbench_bastion_us_per_tx (and openssh_…)   CPU per transaction of the tunnel's client
//                                 and of the bastion's sshd: where a tps gap comes from, when tps itself is noise
//   setup_ms / openssh_setup_ms   start → first PostgreSQL byte (answer to an SSLRequest), median
//   mysql_copy_ratio_vs_openssh   a bulk `SELECT` read by the `mariadb` client, MB/s through ours ÷ through OpenSSH
//                                 (when MariaDB is installed; target ≥ 1.0)
// The direct_* figures are the same measurements with no tunnel at all: the ceiling. Rounds are interleaved (ours,
// OpenSSH, direct; ours and OpenSSH swap places every other round) so drift in machine load affects every side
// alike; medians over the rounds.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPostgres, PG_BIN } from '../dev/postgres';
import { mariadbInstalled, startMariadb } from '../dev/mariadb';
import { startSshd } from '../dev/sshd';
import { freePort } from '../dev/ports';
import { RUN_DIR_ENV, serviceDir, runDir, sweep } from '../dev/run-dir';
import { openTunnel } from '../agent/core/tunnels';
import { generateGrantKey } from '../agent/core/vault';

const MB = 1024 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Send a PostgreSQL SSLRequest and wait for the one-byte answer: the first byte from the database. */
function firstPgByte(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.once('connect', () => socket.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
    socket.once('data', (d) => { socket.destroy(); resolve(d.length > 0); });
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

async function untilFirstPgByte(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await firstPgByte(port)) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`no PostgreSQL byte through port ${port}`);
}

function runChild(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const SOURCE = `
const net = require('node:net');
const total = Number(process.argv[1]);
const chunk = Buffer.alloc(1 << 20, 120);
net.createServer((s) => {
  let left = total;
  const pump = () => { while (left > 0) { left -= chunk.length; if (!s.write(chunk)) return void s.once('drain', pump); } s.end(); };
  pump();
}).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;

const SINK = `
const net = require('node:net');
const started = process.hrtime.bigint();
let bytes = 0;
const s = net.connect(Number(process.argv[1]), '127.0.0.1');
s.on('data', (d) => { bytes += d.length; });
s.on('end', () => { console.log(JSON.stringify({ bytes, ms: Number(process.hrtime.bigint() - started) / 1e6 })); });`;

async function rawMbps(port: number, expectBytes: number): Promise<number> {
  const out = await runChild(process.execPath, ['-e', SINK, String(port)]);
  const { bytes, ms } = JSON.parse(out.stdout.trim()) as { bytes: number; ms: number };
  if (bytes < expectBytes) throw new Error(`raw transfer short: ${bytes} of ${expectBytes} bytes`);
  return bytes / MB / (ms / 1000);
}

/** CPU time (µs, user + system, all threads) a process has used so far: Linux /proc, USER_HZ ticks of 10 ms. */
function procCpuUs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return 0; // exited meanwhile
  }
}

/** The sshd listener (from its pid file in `dir`) and every process under it: a pair per SSH connection. */
function sshdTree(dir: string): number[] {
  const ppids = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    try {
      return [{ pid: Number(name), ppid: Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) }];
    } catch {
      return [];
    }
  });
  const tree = [Number(readFileSync(join(dir, 'sshd.pid'), 'utf8').trim())];
  for (let i = 0; i < tree.length; i++) tree.push(...ppids.filter((p) => p.ppid === tree[i]).map((p) => p.pid));
  return tree;
}

/**
 * `pgbench -S` (select-only), 8 clients on 2 threads, for `seconds`: tps without the initial connection time, and the
 * CPU the tunnel's client (`cpuUs`: ours is this process, OpenSSH its `ssh`) and the bastion's sshd spent per
 * transaction — the costs the tunnel adds, steadier than tps on a shared machine.
 */
async function pgbench(port: number, db: { adminUser: string; adminPassword: string; database: string }, seconds: number, cpuUs: () => number, bastionPids: number[]): Promise<{ tps: number; clientUsPerTx: number; bastionUsPerTx: number }> {
  const bastionUs = () => bastionPids.reduce((sum, pid) => sum + procCpuUs(pid), 0);
  const client0 = cpuUs();
  const bastion0 = bastionUs();
  const out = await runChild(join(PG_BIN, 'pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', db.adminUser, '-S', '-n', '-c', '8', '-j', '2', '-T', String(seconds), db.database], { ...process.env, PGPASSWORD: db.adminPassword });
  const client = cpuUs() - client0;
  const bastion = bastionUs() - bastion0;
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out.stdout);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out.stdout)?.[1]);
  if (out.code !== 0 || !tps || !transactions) throw new Error(`pgbench failed: ${out.stderr || out.stdout}`);
  return { tps: Number(tps[1]), clientUsPerTx: client / transactions, bastionUsPerTx: bastion / transactions };
}

export default async function tunnelBench(opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const copyMb = 200;
  const rawMb = opts.quick ? 200 : 400;
  const rounds = opts.quick ? 3 : 4;
  const setupRounds = opts.quick ? 5 : 11;
  const pgbenchSeconds = opts.quick ? 5 : 20;
  const ownRoot = !process.env[RUN_DIR_ENV];
  const root = runDir();
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const db = await startPostgres();
    cleanups.push(() => db.stop());
    const source: ChildProcess = spawn(process.execPath, ['-e', SOURCE, String(rawMb * MB)], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => void source.kill());
    const sourcePort = await new Promise<number>((resolve) => source.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
    const mariadb = mariadbInstalled() ? await startMariadb({ database: 'bench' }) : undefined;
    if (mariadb) cleanups.push(() => mariadb.stop());
    const targets = [`127.0.0.1:${db.port}`, `127.0.0.1:${sourcePort}`, ...(mariadb ? [`127.0.0.1:${mariadb.port}`] : [])];
    const sshd = await startSshd({ permitOpen: targets });
    cleanups.push(() => sshd.stop());
    const key = generateGrantKey('stint-bench');
    sshd.setAuthorizedKeys([`restrict,port-forwarding,${targets.map((t) => `permitopen="${t}"`).join(',')} ${key.publicKey}`]);
    const dir = serviceDir('bench-tunnel');
    const keyFile = join(dir, 'id_ed25519');
    writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
    const bastion = { host: sshd.host, port: sshd.port, user: sshd.user, hostKeys: [sshd.hostKeyLine] };

    // --- setup time: start → first PostgreSQL byte ---
    const ours: number[] = [];
    for (let i = 0; i < setupRounds; i++) {
      const port = await freePort();
      const t0 = performance.now();
      const tunnel = await openTunnel({ bastion, target: { host: '127.0.0.1', port: db.port }, privateKey: key.privateKey, preferredPort: port });
      await untilFirstPgByte(tunnel.port);
      ours.push(performance.now() - t0);
      await tunnel.close();
    }
    const sshArgs = (localPort: number, targetPort: number) => [
      '-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`, '-i', keyFile, '-p', String(sshd.port),
      '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ExitOnForwardFailure=yes',
      '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', '-F', '/dev/null', `${sshd.user}@${sshd.host}`,
    ];
    const directSetup: number[] = [];
    for (let i = 0; i < setupRounds; i++) {
      const t0 = performance.now();
      await untilFirstPgByte(db.port);
      directSetup.push(performance.now() - t0);
    }
    const openssh: number[] = [];
    for (let i = 0; i < setupRounds; i++) {
      const port = await freePort();
      const t0 = performance.now();
      const ssh = spawn('ssh', sshArgs(port, db.port), { stdio: 'ignore' });
      try {
        await untilFirstPgByte(port);
        openssh.push(performance.now() - t0);
      } finally {
        ssh.kill();
      }
    }

    // --- throughput: the same tunnels for every round ---
    const ourPg = await openTunnel({ bastion, target: { host: '127.0.0.1', port: db.port }, privateKey: key.privateKey, preferredPort: await freePort() });
    const ourRaw = await openTunnel({ bastion, target: { host: '127.0.0.1', port: sourcePort }, privateKey: key.privateKey, preferredPort: await freePort() });
    cleanups.push(() => ourPg.close(), () => ourRaw.close());
    const sshPgPort = await freePort();
    const sshRawPort = await freePort();
    const sshPg = spawn('ssh', sshArgs(sshPgPort, db.port), { stdio: 'ignore' });
    const sshRaw = spawn('ssh', sshArgs(sshRawPort, sourcePort), { stdio: 'ignore' });
    cleanups.push(() => void sshPg.kill(), () => void sshRaw.kill());
    await untilFirstPgByte(sshPgPort);

    const copySql = `COPY (SELECT repeat('x', 1000) FROM generate_series(1, ${Math.round((copyMb * MB) / 1001)})) TO STDOUT`;
    const copyMbps = async (port: number) => {
      const t0 = performance.now();
      const out = await runChild(join(PG_BIN, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', db.adminUser, '-d', db.database, '-X', '-q', '-o', '/dev/null', '-c', copySql], { ...process.env, PGPASSWORD: db.adminPassword });
      if (out.code !== 0) throw new Error(`psql failed: ${out.stderr}`);
      return copyMb / ((performance.now() - t0) / 1000);
    };
    const init = await runChild(join(PG_BIN, 'pgbench'), ['-h', '127.0.0.1', '-p', String(db.port), '-U', db.adminUser, '-i', '-q', '-s', '1', db.database], { ...process.env, PGPASSWORD: db.adminPassword });
    if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);

    // MariaDB: the same tunnels (ours, ssh -L) to its port, a bulk SELECT read by the real client into /dev/null.
    const mysqlMb = 100;
    const ourMysql = mariadb ? await openTunnel({ bastion, target: { host: '127.0.0.1', port: mariadb.port }, privateKey: key.privateKey, preferredPort: await freePort() }) : undefined;
    const sshMysqlPort = await freePort();
    const sshMysql = mariadb ? spawn('ssh', sshArgs(sshMysqlPort, mariadb.port), { stdio: 'ignore' }) : undefined;
    cleanups.push(() => ourMysql?.close(), () => void sshMysql?.kill());
    if (mariadb) await untilFirstPgByte(sshMysqlPort); // any first byte: MariaDB greets first
    const mysqlMbps = async (port: number) => {
      const rows = Math.round((mysqlMb * MB) / 1001);
      const t0 = performance.now();
      // The password through MYSQL_PWD, not the command line; the bench's own throwaway admin.
      const out = await runChild('mariadb', ['--no-defaults', '-h', '127.0.0.1', '-P', String(port), '--protocol=TCP', '-u', mariadb!.adminUser, '-N', '-B', '-e', `SELECT REPEAT('x', 1000) FROM seq_1_to_${rows}`, 'bench'], { ...process.env, MYSQL_PWD: mariadb!.adminPassword });
      if (out.code !== 0) throw new Error(`mariadb failed: ${out.stderr}`);
      return mysqlMb / ((performance.now() - t0) / 1000);
    };

    const sides = () => ({ ours: [] as number[], openssh: [] as number[], direct: [] as number[] });
    const mysqlCopy = sides();
    const copy = sides();
    const raw = sides();
    const tps = sides();
    const txCost = { ours: [] as number[], openssh: [] as number[], oursBastion: [] as number[], opensshBastion: [] as number[] };
    const selfCpuUs = () => { const { user, system } = process.cpuUsage(); return user + system; };
    // Ours first in even rounds, OpenSSH first in odd ones: neither side always runs right after the previous measure.
    const pair = async <T>(i: number, ours: () => Promise<T>, openssh: () => Promise<T>): Promise<[T, T]> => {
      if (i % 2 === 0) {
        const first = await ours();
        return [first, await openssh()];
      }
      const first = await openssh();
      return [await ours(), first];
    };
    for (let i = 0; i < rounds; i++) {
      const [copyOurs, copySsh] = await pair(i, () => copyMbps(ourPg.port), () => copyMbps(sshPgPort));
      copy.ours.push(copyOurs);
      copy.openssh.push(copySsh);
      copy.direct.push(await copyMbps(db.port));
      const [rawOurs, rawSsh] = await pair(i, () => rawMbps(ourRaw.port, rawMb * MB), () => rawMbps(sshRawPort, rawMb * MB));
      raw.ours.push(rawOurs);
      raw.openssh.push(rawSsh);
      raw.direct.push(await rawMbps(sourcePort, rawMb * MB));
      const bastionPids = sshdTree(sshd.dir);
      const [ourRun, sshRun] = await pair(i, () => pgbench(ourPg.port, db, pgbenchSeconds, selfCpuUs, bastionPids), () => pgbench(sshPgPort, db, pgbenchSeconds, () => procCpuUs(sshPg.pid!), bastionPids));
      tps.ours.push(ourRun.tps);
      tps.openssh.push(sshRun.tps);
      tps.direct.push((await pgbench(db.port, db, pgbenchSeconds, () => 0, [])).tps);
      txCost.ours.push(ourRun.clientUsPerTx);
      txCost.openssh.push(sshRun.clientUsPerTx);
      txCost.oursBastion.push(ourRun.bastionUsPerTx);
      txCost.opensshBastion.push(sshRun.bastionUsPerTx);
      if (mariadb && ourMysql) {
        const [mysqlOurs, mysqlSsh] = await pair(i, () => mysqlMbps(ourMysql.port), () => mysqlMbps(sshMysqlPort));
        mysqlCopy.ours.push(mysqlOurs);
        mysqlCopy.openssh.push(mysqlSsh);
        mysqlCopy.direct.push(await mysqlMbps(mariadb.port));
      }
    }
    const round2 = (n: number) => Math.round(n * 100) / 100;
    const round1 = (n: number) => Math.round(n * 10) / 10;
    return {
      copy_ratio_vs_openssh: round2(median(copy.ours) / median(copy.openssh)),
      raw_ratio_vs_openssh: round2(median(raw.ours) / median(raw.openssh)),
      pgbench_tps_ratio_vs_openssh: round2(median(tps.ours) / median(tps.openssh)),
      ...(mariadb ? {
        mysql_copy_ratio_vs_openssh: round2(median(mysqlCopy.ours) / median(mysqlCopy.openssh)),
        mysql_copy_mbps: Math.round(median(mysqlCopy.ours)),
        openssh_mysql_copy_mbps: Math.round(median(mysqlCopy.openssh)),
        direct_mysql_copy_mbps: Math.round(median(mysqlCopy.direct)),
        mysql_copy_mb: mysqlMb,
      } : { mysql_copy_ratio_vs_openssh: 'skipped_no_mariadb' }),
      setup_ms: Math.round(median(ours)),
      openssh_setup_ms: Math.round(median(openssh)),
      direct_setup_ms: round2(median(directSetup)),
      copy_mbps: Math.round(median(copy.ours)),
      openssh_copy_mbps: Math.round(median(copy.openssh)),
      direct_copy_mbps: Math.round(median(copy.direct)),
      raw_mbps: Math.round(median(raw.ours)),
      openssh_raw_mbps: Math.round(median(raw.openssh)),
      direct_raw_mbps: Math.round(median(raw.direct)),
      pgbench_tps: Math.round(median(tps.ours)),
      openssh_pgbench_tps: Math.round(median(tps.openssh)),
      direct_pgbench_tps: Math.round(median(tps.direct)),
      // CPU µs per pgbench transaction: the tunnel's client (ours: this process, all threads; OpenSSH: `ssh`), and the
      // bastion's sshd serving it. Unlike tps, these barely move with other load on the machine.
      pgbench_client_us_per_tx: round1(median(txCost.ours)),
      openssh_pgbench_client_us_per_tx: round1(median(txCost.openssh)),
      pgbench_bastion_us_per_tx: round1(median(txCost.oursBastion)),
      openssh_pgbench_bastion_us_per_tx: round1(median(txCost.opensshBastion)),
      copy_mb: copyMb,
      raw_mb: rawMb,
      pgbench_s: pgbenchSeconds,
      rounds,
      loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join('/'),
    };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try { await cleanup(); } catch { /* keep cleaning */ }
    }
    if (ownRoot) {
      sweep(root);
      delete process.env[RUN_DIR_ENV];
    }
  }
}
