// The words for each resource kind, the same in the tray, the windows and the CLI: what the thing is called and the
// command-line client that opens it.
import type { ResourceKind } from '../contract/kinds';

export interface KindWords {
  /** What it is, for people: "PostgreSQL". */
  name: string;
  /** The client its connect command runs: "psql". */
  client: string;
  /** Whether a grant has a password to reveal (an SSH host's grant has only its key, which stays in its file). */
  password: boolean;
}

export const KIND_WORDS: Record<ResourceKind, KindWords> = {
  postgres: { name: 'PostgreSQL', client: 'psql', password: true },
  ssh: { name: 'SSH host', client: 'ssh', password: false },
  mariadb: { name: 'MariaDB', client: 'mariadb', password: true },
};

/** The words for a grant or resource of this kind (PostgreSQL's for an older server that did not say). */
export function kindWords(kind: ResourceKind | undefined): KindWords {
  return KIND_WORDS[kind ?? 'postgres'];
}
