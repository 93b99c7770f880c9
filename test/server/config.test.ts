// Config validation: the design sketch parses, and every mistake is reported with its path and what was expected.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig, resolveSecret, policyHash } from '../../server/config';

// A copy of ../shared/design/config.example.yaml: the test must not depend on what sits beside the repo.
const example = readFileSync(new URL('./fixtures/config.example.yaml', import.meta.url), 'utf8')
  // The sketch predates bastion tokens.
  .replace('    user: stint\n', '    user: stint\n    token: env:BASTION_TOKEN\n');

function issues(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected the config to be refused');
}

describe('config', () => {
  it('parses the design sketch with durations in seconds and defaults filled in', () => {
    const config = parseConfig(example);
    expect(config.policies['production-db']).toMatchObject({
      duration: { default: 3600, max: 4 * 3600 }, requestTtl: 1800, activationWindow: 900,
      approvals: [{ from: 'dba', count: 1 }, { from: 'sre-leads', count: 1 }],
      stepUp: { request: 'always', approve: 'always', methods: ['webauthn'], riskAtLeast: 50 },
    });
    const first = config.resources[0]!;
    expect(first.kind === 'postgres' && first.admin).toEqual({ url: 'env:ORDERS_ADMIN_URL' });
    expect(config.identity.adminGroups).toEqual(['admins']);
    expect(config.webauthn?.rpName).toBe('Stint');
  });

  it('names the path and the expectation for each mistake', () => {
    const shape = example
      .replace('sensitivity: low', 'sensitivity: tiny')
      .replace('requestTtl: 30m', 'requestTtl: soon')
      .replace('audience: https://stint.example.com/api', 'audience: https://stint.example.com/api\n  colour: blue');
    expect(issues(shape)).toEqual([
      'identity: unknown field(s) colour',
      'resources[1].sensitivity: Invalid option: expected one of "low"|"medium"|"high"',
      'policies.production-db.requestTtl: expected a duration like 90s, 15m, 1h, 1h30m or 2d, got "soon"',
    ]);
    // Rules across fields are checked once the shape is right.
    const rules = example
      .replace('duration: { default: 1h, max: 4h }', 'duration: { default: 5h, max: 4h }')
      .replace('policy: staging-self-service', 'policy: nope');
    expect(issues(rules)).toEqual([
      'policies.production-db.duration.default: expected default ≤ max',
      'resources[1].policy: expected one of the policies (production-db, staging-self-service), got nope',
    ]);
  });

  it('reports missing required fields and YAML syntax errors', () => {
    expect(issues('server: {}\n')).toEqual(expect.arrayContaining(['server.url: required (expected string)', 'identity: required (expected object)']));
    expect(issues('server: [unclosed\n')[0]).toMatch(/^line \d+: YAML/);
  });

  it('resolves secret references from the environment and files, and says which is missing', () => {
    expect(resolveSecret('env:X', { X: 'v' })).toEqual({ ok: true, value: 'v' });
    expect(resolveSecret('env:NOPE', {})).toMatchObject({ ok: false, message: 'environment variable NOPE is not set' });
    expect(resolveSecret('file:/nonexistent/secret', {})).toMatchObject({ ok: false, code: 'secret_missing' });
    expect(resolveSecret('literal-value', {})).toEqual({ ok: true, value: 'literal-value' });
  });

  it('takes the step-up limits from the config (they were hard-coded in the server), with defaults', () => {
    const docs = readFileSync('docs/config.example.yaml', 'utf8');
    expect(parseConfig(docs).stepup).toEqual({ totpKey: 'env:STINT_DEMO_TOTP_KEY', challengeTtl: 120, maxAttempts: 5, lockout: 300, firstFactorWindow: 600 });
    const tuned = parseConfig(docs.replace('  totpKey: env:STINT_DEMO_TOTP_KEY', '  totpKey: env:STINT_DEMO_TOTP_KEY\n  challengeTtl: 3m\n  maxAttempts: 3\n  lockout: 15m'));
    expect(tuned.stepup).toMatchObject({ challengeTtl: 180, maxAttempts: 3, lockout: 900 });
    expect(() => parseConfig(docs.replace('  totpKey: env:STINT_DEMO_TOTP_KEY', '  totpKey: env:STINT_DEMO_TOTP_KEY\n  challengeTtl: 1h'))).toThrow(/stepup\.challengeTtl.*between 10s and 10m/);
  });

  it('takes a resource of each kind (postgres when none is said), and names the kinds when one is unknown', () => {
    const mariadb = [
      '  - id: prod-shop', '    name: Shop (production)', '    environment: production', '    sensitivity: high', '    kind: mariadb',
      '    bastion: main', '    target: { host: 10.1.2.9, database: shop }', '    accountHost: 10.1.0.5', '    admin: { url: env:SHOP_ADMIN_URL }',
      '    levels: { read: [select, show view], admin: [ALL PRIVILEGES] }', '    policy: production-db', '',
    ].join('\n');
    const config = parseConfig(example.replace('    kind: postgres\n', '').replace('resources:\n', `resources:\n${mariadb}`));
    expect(config.resources.map((r) => r.kind)).toEqual(['mariadb', 'postgres', 'postgres']);
    expect(config.resources[0]).toMatchObject({ target: { host: '10.1.2.9', port: 3306, database: 'shop' }, accountHost: '10.1.0.5', levels: { read: ['SELECT', 'SHOW VIEW'], admin: ['ALL PRIVILEGES'] } });
    expect(issues(example.replace('kind: postgres', 'kind: oracle'))).toEqual(['resources[0].kind: expected one of the kinds: postgres, ssh, mariadb']);
    expect(issues(example.replace('resources:\n', `resources:\n${mariadb.replace('[select, show view]', '["SELECT; DROP TABLE x", grant option]').replace('    accountHost: 10.1.0.5\n', '')}`)))
      .toEqual(['resources[0].accountHost: required (expected string)', 'resources[0].levels.read[0]: a privilege name such as SELECT, SHOW VIEW or ALL PRIVILEGES',
        'resources[0].levels.read[1]: not GRANT OPTION: a grant could pass its privileges to accounts that outlive it']);
  });

  it('gives a policy a new hash only when its content changes', () => {
    const a = parseConfig(example).policies['production-db']!;
    const b = parseConfig(example.replace('requestTtl: 30m', 'requestTtl: 1800s')).policies['production-db']!;
    const c = parseConfig(example.replace('requestTtl: 30m', 'requestTtl: 20m')).policies['production-db']!;
    expect(policyHash(a)).toBe(policyHash(b));
    expect(policyHash(a)).not.toBe(policyHash(c));
  });
});
