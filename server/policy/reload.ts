// Live reload of the config file (#25): on a change of the file (watched, debounced), SIGHUP or the admin API, the
// file is read and checked in full; if it is valid, its policies, resources and bastions replace the running ones
// (each policy's version recorded), and whatever else changed is reported as waiting for a restart. An invalid file
// is refused with its reasons (logged, audited, returned) and the running config stays as it was.
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, loadConfig, resolveSecret, secretRefs, type ConfigIssue, type ServerConfig } from '../config';
import type { AuditInput } from '../lifecycle/audit';
import type { Logger } from '../lifecycle/support';
import type { Metrics } from '../metrics';
import { configDelta, withReloadable, type ConfigChange } from './changes';
import type { PolicyVersionRef } from './versions';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

export type ReloadTrigger = 'file' | 'signal' | 'api';

export type ReloadResult =
  | { outcome: 'applied' | 'unchanged'; changes: ConfigChange[]; restartRequired: string[]; versions: PolicyVersionRef[] }
  | { outcome: 'refused'; errors: ConfigIssue[] };

export interface ConfigReloaderDeps {
  /** The config file the server was started with; without one there is nothing to reload from. */
  path?: string;
  /** The config the server runs now (the catalog's). */
  running: () => ServerConfig;
  /** Record the new policies' versions and swap the catalog (Lifecycle.applyConfig). */
  apply: (config: ServerConfig, reload: Omit<AuditInput, 'at' | 'action'>) => Promise<PolicyVersionRef[]>;
  /** After the catalog is swapped: the composition's own state built from the reloadable sections (bastion tokens, credentials). */
  applied: (config: ServerConfig) => void;
  /** Audit a refused reload (its own change). */
  audit: (entry: Omit<AuditInput, 'at'>) => Promise<void>;
  log: Logger;
  metrics: Pick<Metrics, 'configReloads'>;
  env?: NodeJS.ProcessEnv;
}

/** Secret references of the reloadable sections must resolve now: a reload cannot fail half-applied later. */
function missingSecrets(config: ServerConfig, env: NodeJS.ProcessEnv): ConfigIssue[] {
  return secretRefs(config)
    .filter((s) => s.where.startsWith('bastions.') || s.where.startsWith('resources['))
    .flatMap((s) => { const r = resolveSecret(s.ref, env); return r.ok ? [] : [{ path: s.where, message: r.message }]; });
}

export class ConfigReloader {
  /** Reloads run one at a time, in the order they were asked for. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ConfigReloaderDeps) {}

  get path(): string | undefined {
    return this.deps.path;
  }

  reload(trigger: ReloadTrigger, actor = 'system'): Promise<ReloadResult> {
    const run = this.tail.then(() => this.reloadNow(trigger, actor));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(trigger: ReloadTrigger, actor: string): Promise<ReloadResult> {
    const path = this.deps.path;
    if (!path) return this.refused(trigger, actor, [{ path: '', message: 'the server was started without a config file, so there is nothing to reload from' }]);
    let next: ServerConfig;
    try {
      next = loadConfig(path);
    } catch (error) {
      if (error instanceof ConfigError) return this.refused(trigger, actor, error.issues);
      throw error;
    }
    const missing = missingSecrets(next, this.deps.env ?? process.env);
    if (missing.length) return this.refused(trigger, actor, missing);
    const running = this.deps.running();
    const { changes, restartRequired } = configDelta(running, next);
    if (restartRequired.length) this.deps.log.warn({ restartRequired, file: path }, `config: ${restartRequired.join(', ')} changed in the file; a reload does not apply these, restart the server to`);
    if (changes.length === 0) {
      this.deps.metrics.configReloads.inc({ trigger, outcome: 'unchanged' });
      return { outcome: 'unchanged', changes, restartRequired, versions: [] };
    }
    const applied = withReloadable(running, next);
    const summary = changes.map((c) => `${c.section}/${c.id} ${c.change}`);
    let versions: PolicyVersionRef[];
    try {
      versions = await this.deps.apply(applied, { actor, reason: `config reloaded (${trigger})`, detail: { trigger, file: path, changes: summary, restartRequired } });
    } catch (error) {
      // Storage failed while recording the versions: nothing was swapped, the running config stays.
      this.deps.metrics.configReloads.inc({ trigger, outcome: 'failed' });
      throw error;
    }
    this.deps.applied(applied);
    this.deps.metrics.configReloads.inc({ trigger, outcome: 'applied' });
    this.deps.log.info({ trigger, changes: summary, versions }, 'config reloaded');
    return { outcome: 'applied', changes, restartRequired, versions };
  }

  private async refused(trigger: ReloadTrigger, actor: string, errors: ConfigIssue[]): Promise<ReloadResult> {
    this.deps.metrics.configReloads.inc({ trigger, outcome: 'refused' });
    this.deps.log.error({ trigger, file: this.deps.path, errors }, `config reload refused, the running config is kept:\n${errors.map((e) => `  - ${e.path || '(top)'}: ${e.message}`).join('\n')}`);
    await this.deps.audit({ actor, action: 'config.reload_refused', reason: `config reload refused (${trigger})`, detail: { trigger, errors } });
    return { outcome: 'refused', errors };
  }

  /**
   * Reload when the file's content changes. Its directory is watched, not the file: editors and deploy tools replace
   * a file by renaming a new one over it, and Kubernetes swaps a ConfigMap's files through a symlinked directory —
   * a watch on the old file would see neither. Bursts of events are debounced, and only a new content reloads (the
   * directory may hold busy files, e.g. a SQLite database).
   */
  watch(debounceMs = 300): () => void {
    const path = this.deps.path;
    if (!path) return () => {};
    const contentHash = () => { try { return sha256(readFileSync(path)); } catch { return undefined; } };
    let seen = contentHash();
    let timer: NodeJS.Timeout | undefined;
    const fire = () => {
      timer = undefined;
      const now = contentHash();
      if (now === seen) return;
      seen = now;
      void this.reload('file').catch((error: unknown) => this.deps.log.error({ err: error }, 'config reload failed'));
    };
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(dirname(path), () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(fire, debounceMs);
        timer.unref();
      });
      watcher.on('error', (error) => this.deps.log.warn({ err: error }, 'config file watch stopped; SIGHUP and the admin API still reload'));
    } catch (error) {
      this.deps.log.warn({ err: error }, 'cannot watch the config file; SIGHUP and the admin API still reload');
    }
    return () => {
      if (timer) clearTimeout(timer);
      watcher?.close();
    };
  }
}
