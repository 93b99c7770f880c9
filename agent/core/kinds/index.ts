// The agent's module per resource kind (see kind.ts). Adding a kind: its module here and its words in
// shared/domain/kinds.ts.
import type { ResourceKind } from '../../../shared/contract/kinds';
import type { ClientKind } from './kind';
import { mariadbClient } from './mariadb';
import { postgresClient } from './postgres';
import { sshClient } from './ssh';

const CLIENTS: Record<ResourceKind, ClientKind> = {
  postgres: postgresClient,
  ssh: sshClient,
  mariadb: mariadbClient,
};

export function clientKind(kind: ResourceKind): ClientKind {
  return CLIENTS[kind];
}
