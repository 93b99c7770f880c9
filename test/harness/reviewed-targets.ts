// The demo's MariaDB database (staging-shop) and SSH host (staging-web) under one policy a colleague decides, with
// grants short enough to watch their deadline in a journey (issue #23: request → step-up → approve → connect → query
// or command → deadline). The demo config is otherwise unchanged: the same databases, bastion, host and people.

/** How long a reviewed grant lasts: long enough to connect and run a query or command, short enough to wait out. */
export const REVIEWED_GRANT_SECONDS = 20;

/**
 * Re-points staging-shop and staging-web to `targets-review`: engineers ask, always with a step-up; one DBA (bob)
 * approves, with a step-up of his own; every grant lasts REVIEWED_GRANT_SECONDS.
 */
export function reviewedTargets(yaml: string): string {
  const repoint = (text: string, id: string): string => {
    const start = text.indexOf(`  - id: ${id}`);
    if (start === -1) throw new Error(`reviewedTargets: resource ${id} is not in the demo config`);
    const policy = text.indexOf('    policy: ', start);
    const lineEnd = text.indexOf('\n', policy);
    return `${text.slice(0, policy)}    policy: targets-review${text.slice(lineEnd)}`;
  };
  const d = `${REVIEWED_GRANT_SECONDS}s`;
  const policy = `  targets-review:
    requesters: [engineers]
    duration: { default: ${d}, max: ${d} }
    reason: required
    approvals: [{ from: dba, count: 1 }]
    stepUp: { request: always, approve: always, methods: [webauthn, totp] }
`;
  const edited = repoint(repoint(yaml, 'staging-shop'), 'staging-web');
  return edited.replace('\npolicies:\n', `\npolicies:\n${policy}`);
}
