// Where in an access token a value lives: `groups`, a nested path such as `realm_access.roles` (Keycloak), or a
// namespaced claim whose name itself has dots, such as `https://example.com/groups` (Auth0). A dot inside a name is
// written `\.`; a claim present under the whole configured string is taken as it is, so a namespaced URL works
// without escaping.

/** The keys of a claim path: split on dots that are not escaped with a backslash. */
export function claimPathKeys(path: string): string[] {
  const keys: string[] = [];
  let current = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c === '\\' && (path[i + 1] === '.' || path[i + 1] === '\\')) {
      current += path[i + 1];
      i++;
    } else if (c === '.') {
      keys.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  keys.push(current);
  return keys;
}

/** Why a claim path cannot be used, or undefined when it can. */
export function claimPathProblem(path: string): string | undefined {
  if (!path) return 'a claim name, e.g. groups, realm_access.roles or https://example.com/groups';
  if (claimPathKeys(path).some((key) => key === '')) return `"${path}" has an empty name between dots (write a dot inside a claim name as \\.)`;
  return undefined;
}

/** The value at `path` in `payload`: the whole string as one claim name first, then the dotted path. */
export function readClaim(payload: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  return claimPathKeys(path).reduce<unknown>((node, key) => (node && typeof node === 'object' && Object.hasOwn(node, key) ? (node as Record<string, unknown>)[key] : undefined), payload);
}
