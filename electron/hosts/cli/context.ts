// What every command gets: the agent of this run's profile, where to write, and how (--json or words).
import type { Agent } from '../../core/agent';
import type { Io } from './terminal';

export interface CliContext {
  agent: Agent;
  io: Io;
  json: boolean;
  profile: string;
  /** The result: `human` for a person, `data` as one JSON line with --json. */
  print: (human: string, data: unknown) => void;
}
