// What every command gets: the agent of this run's profile, where to write, and how (--json or words).
import type { CliAgent } from './remote-agent';
import type { Io } from './terminal';

export interface CliContext {
  /** This run's own agent, or the running agent of the profile reached through its socket (`remote`). */
  agent: CliAgent;
  remote: boolean;
  io: Io;
  json: boolean;
  profile: string;
  /** The result: `human` for a person, `data` as one JSON line with --json. */
  print: (human: string, data: unknown) => void;
}
