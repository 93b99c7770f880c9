// `stint-server`: serve | migrate | check-config | check-targets | audit verify | audit export | openapi.
// The composition for production lives here: the credential providers of the resource kinds and WebAuthn/TOTP step-up are built
// from the config; tests build the server with buildServer and their own effects instead.
import { writeFileSync, createWriteStream, readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError, requireSecret, resolveSecret, secretRefs, type ServerConfig } from './config';
import { buildServer, type BuildServerOptions, type StepUpWiring } from './app';
import { openStore } from './storage/db';
import { verifyAudit, toAuditEntry } from './lifecycle/audit';
import { checkpointKey, readCheckpoints, verifyAgainstCheckpoints, writeCheckpoint } from './lifecycle/audit-checkpoints';
import { openApiDocument } from './http/openapi';
import { documentedRoutes } from './http/table';
import { createDbSessionStore } from './bastion/sessions';
import { StepUpService } from './stepup/service';
import { KyselyStepUpStore } from './stepup/store';
import { declareStepUpRoutes } from './stepup/routes';
import { policyCheck, policyHistory } from './policy/cli';
import { reloadableCredentials } from './policy/reloadable-credentials';
import { webhookStatus } from './webhooks/status';
import { credentialProviders } from './targets/registry';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

const defaultIo: Io = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`), env: process.env };

const USAGE = `usage: stint-server <command> [--config <file>]
  serve          run the grant server
  migrate        apply pending storage migrations
  check-config   validate the config and its secret references
  check-targets  connect to every resource's database and report what is wrong (isolation, a version too old) and
                 what Stint makes up for (e.g. no account expiry on MariaDB); exit 1 on a problem
  audit verify   check the audit hash chain (and the signed checkpoints, when configured); reports the first broken link
  audit checkpoint  sign the chain's head now and append it to audit.checkpoints.file
  audit export   write the audit log as JSON lines (--out <file>, default stdout)
  policy check FILE [--config CURRENT]  validate FILE; with CURRENT, show what a reload to FILE would change
  policy history [--policy ID] [--limit N]  the recorded policy versions, newest first, with diffs
  openapi        write the OpenAPI document (--out <file>, default stdout)
  webhooks       each webhook endpoint: last delivery, failures, backlog
The config file may also be given as STINT_CONFIG.`;

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

/** Effects for production: credentials per resource kind (server/targets), following reloads, and step-up (when webauthn + stepup.totpKey are configured). */
export function productionEffects(config: ServerConfig, env: NodeJS.ProcessEnv): Pick<BuildServerOptions, 'credentials' | 'stepUp' | 'reconfigure'> {
  // Made once the server's database is open: SSH hosts' ends wait for their sessions recorded there.
  let reloadable: ReturnType<typeof reloadableCredentials> | undefined;
  const credentials: BuildServerOptions['credentials'] = ({ db }) => {
    reloadable = reloadableCredentials(config.resources, env, { sessions: createDbSessionStore(db) });
    return reloadable.provider;
  };
  let stepUp: BuildServerOptions['stepUp'];
  if (config.webauthn && config.stepup) {
    const totpKey = requireSecret(config.stepup.totpKey, 'stepup.totpKey', env);
    const webauthn = config.webauthn;
    const stepup = config.stepup;
    stepUp = ({ db, clock }): StepUpWiring => {
      const service = new StepUpService({ store: new KyselyStepUpStore(db), config: { rpId: webauthn.rpId, rpName: webauthn.rpName, origins: webauthn.origins, totpKey, challengeTtlSeconds: stepup.challengeTtl, maxAttempts: stepup.maxAttempts, lockoutSeconds: stepup.lockout }, now: () => clock.now() });
      return { gate: service, routes: (deps) => declareStepUpRoutes({ service, resolver: deps.resolver, audit: deps.audit, firstFactorWindowMs: stepup.firstFactorWindow * 1000, now: () => clock.now() }) };
    };
  }
  return { credentials, stepUp, reconfigure: (next) => reloadable?.reconfigure(next) };
}

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  const [command, sub] = argv;
  if (!command || command === '--help' || command === 'help') {
    io.out(USAGE);
    return command ? 0 : 2;
  }
  if (command === 'openapi') {
    // Every route the server can serve, step-up and bastion routes included.
    const doc = `${JSON.stringify(openApiDocument(documentedRoutes()), null, 2)}\n`;
    const out = flag(argv, '--out');
    if (out) writeFileSync(out, doc);
    else io.out(doc.trimEnd());
    return 0;
  }
  const path = flag(argv, '--config') ?? io.env.STINT_CONFIG;
  if (command === 'policy' && sub === 'check') {
    const file = argv[2];
    if (!file || file.startsWith('--')) {
      io.err('usage: stint-server policy check FILE [--config CURRENT]');
      return 2;
    }
    return policyCheck(file, path, io);
  }
  if (!path) {
    io.err('stint-server: --config <file> (or STINT_CONFIG) is required');
    return 2;
  }
  let config: ServerConfig;
  try {
    config = loadConfig(path);
  } catch (error) {
    io.err(error instanceof ConfigError ? error.message : `stint-server: ${(error as Error).message}`);
    return 1;
  }
  switch (command) {
    case 'check-config': {
      const missing = secretRefs(config).map((s) => ({ ...s, r: resolveSecret(s.ref, io.env) })).filter((s) => !s.r.ok);
      for (const m of missing) io.err(`${m.where}: ${m.r.ok ? '' : m.r.message}`);
      if (missing.length) return 1;
      io.out(`ok: ${config.resources.length} resource(s), ${Object.keys(config.policies).length} polic(ies), ${Object.keys(config.bastions).length} bastion(s)`);
      return 0;
    }
    case 'check-targets': {
      // The checks the server logs at start, on demand: an operator's doctor for the databases behind the resources.
      const credentials = credentialProviders(config.resources, io.env);
      if (!credentials) {
        io.out('ok: no resources');
        return 0;
      }
      try {
        const [problems, notices] = await Promise.all([credentials.isolationProblems?.() ?? [], credentials.notices?.() ?? []]);
        for (const notice of notices) io.out(`note: ${notice}`);
        for (const problem of problems) io.err(`problem: ${problem}`);
        if (problems.length) return 1;
        io.out(`ok: ${config.resources.length} resource(s) checked`);
        return 0;
      } finally {
        await credentials.close();
      }
    }
    case 'migrate': {
      const store = openStore(config.storage.url);
      try {
        const applied = await store.migrate();
        io.out(applied.length ? `applied: ${applied.join(', ')}` : 'up to date');
        return 0;
      } finally {
        await store.close();
      }
    }
    case 'audit': {
      const store = openStore(config.storage.url);
      try {
        if (sub === 'verify') {
          const signed = config.audit.checkpoints;
          if (!signed) {
            const result = await verifyAudit(store.db);
            if (result.ok) {
              io.out(`ok: ${result.count} entries, chain intact (last hash ${result.lastHash}); no checkpoints configured, so a cut-off tail or a re-hashed chain would not show (audit.checkpoints)`);
              return 0;
            }
            io.err(`broken: first bad link at seq ${result.seq}: ${result.reason} (${result.count} entries verified before it)`);
            return 1;
          }
          // An auditor verifies with the public key alone (--public-key FILE); the server's own key works too.
          const publicPem = flag(argv, '--public-key');
          const publicKey = publicPem ? createPublicKey(readFileSync(publicPem, 'utf8')) : checkpointKey(requireSecret(signed.key, 'audit.checkpoints.key', io.env)).publicKey;
          const { checkpoints, unreadable } = readCheckpoints(flag(argv, '--checkpoints') ?? signed.file);
          if (unreadable.length) io.err(`warning: lines ${unreadable.join(', ')} of the checkpoint file are not checkpoints`);
          const result = await verifyAgainstCheckpoints(store.db, checkpoints, publicKey);
          if (result.ok) {
            io.out(`ok: ${result.count} entries, chain intact (last hash ${result.lastHash}), matches ${result.checkpoints} signed checkpoint${result.checkpoints === 1 ? '' : 's'}`);
            return 0;
          }
          io.err(`broken (${result.kind}): at seq ${result.seq}: ${result.reason} (${result.count} entries in the chain)`);
          return 1;
        }
        if (sub === 'checkpoint') {
          const signed = config.audit.checkpoints;
          if (!signed) {
            io.err('no audit.checkpoints in the config: add a key (env:NAME holding an Ed25519 PEM) and a file');
            return 2;
          }
          const written = await writeCheckpoint(store.db, checkpointKey(requireSecret(signed.key, 'audit.checkpoints.key', io.env)).privateKey, signed.file, Date.now());
          io.out(written ? `checkpoint: seq ${written.seq} ${written.hash} → ${signed.file}` : 'checkpoint: the last one already names the chain\'s head');
          return 0;
        }
        if (sub === 'export') {
          const out = flag(argv, '--out');
          const stream = out ? createWriteStream(out) : undefined;
          let after = 0;
          for (;;) {
            const rows = await store.db.selectFrom('audit').selectAll().where('seq', '>', after).orderBy('seq').limit(1000).execute();
            for (const row of rows) {
              const line = JSON.stringify(toAuditEntry(row));
              if (stream) stream.write(`${line}\n`);
              else io.out(line);
              after = row.seq;
            }
            if (rows.length < 1000) break;
          }
          if (stream) await new Promise<void>((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
          return 0;
        }
        io.err('usage: stint-server audit verify|checkpoint|export --config <file>');
        return 2;
      } finally {
        await store.close();
      }
    }
    case 'policy': {
      if (sub !== 'history') {
        io.err('usage: stint-server policy check FILE [--config CURRENT] | policy history [--policy ID] [--limit N] --config FILE');
        return 2;
      }
      return policyHistory(config, { policyId: flag(argv, '--policy'), limit: Number(flag(argv, '--limit') ?? 20) }, io);
    }
    case 'webhooks': {
      const store = openStore(config.storage.url);
      try {
        const endpoints = await webhookStatus(store.db, config, io.env);
        if (endpoints.length === 0) io.out('no webhook endpoints configured (webhooks.endpoints)');
        for (const e of endpoints) {
          io.out(`${e.id}  ${e.format}  ${e.url}  events: ${e.events.join(', ')}`);
          io.out(`  delivered ${e.delivered}, pending ${e.pending}${e.oldestPendingAt ? ` (oldest ${e.oldestPendingAt})` : ''}, given up ${e.failed}, failed attempts ${e.failedAttempts}`);
          io.out(`  last delivery: ${e.lastDeliveryAt ?? 'never'}; last failure: ${e.lastFailure ? `${e.lastFailure.at} ${e.lastFailure.eventType}: ${e.lastFailure.error}` : 'none'}`);
        }
        return 0;
      } finally {
        await store.close();
      }
    }
    case 'serve': {
      let server: Awaited<ReturnType<typeof buildServer>>;
      try {
        server = await buildServer({ config, configPath: path, ...productionEffects(config, io.env), logger: { level: io.env.STINT_LOG_LEVEL ?? 'info', redact: ['req.headers.authorization'] }, env: io.env });
      } catch (error) {
        io.err(`stint-server: cannot start: ${(error as Error).message}`);
        return 1;
      }
      await server.app.listen({ host: config.server.listen.host, port: config.server.listen.port });
      io.out(`stint-server listening on ${config.server.listen.host}:${(server.app.server.address() as { port: number }).port}`);
      // SIGHUP reloads policies, resources and bastions from the file (the reload logs what it did or refused).
      const hup = () => { void server.reload('signal').catch((error: unknown) => io.err(`stint-server: reload failed: ${(error as Error).message}`)); };
      process.on('SIGHUP', hup);
      await new Promise<void>((resolve) => {
        const stop = () => { process.off('SIGHUP', hup); void server.close().finally(resolve); };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      return 0;
    }
    default:
      io.err(`stint-server: unknown command ${command}\n${USAGE}`);
      return 2;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
