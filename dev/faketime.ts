// A process's real clock moved from outside, with libfaketime (Debian `faketime`, build/prereqs.sh): the child is
// started with the library preloaded and a timestamp file that is read again on every time call, so writing an
// offset to the file moves the clock the child's libc, V8, libuv, undici and ssh2 read — what a user or NTP setting
// the system clock does to a running program, which an injected Clock cannot show.
//
// By default only CLOCK_REALTIME moves (FAKETIME_DONT_FAKE_MONOTONIC=1): that is what a wall-clock change does on a
// real machine, where CLOCK_MONOTONIC never goes back. `fakeMonotonic` moves both clocks, which no kernel does; Node
// aborts on it (a backward jump past the process's start fails the CHECK `now >= timer_base()` in
// node::Environment::GetNowUint64 at the next setTimeout — test/journeys/faults-clock-process.test.ts).
import type { ChildProcess } from 'node:child_process';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceDir } from './run-dir';

/**
 * The multi-threaded build: Node reads the clock from its libuv and V8 worker threads too, and with no cache every
 * read parses the timestamp file into the library's state.
 */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

export interface FakeTime {
  /** The environment to start the child with (add it to the child's env). */
  env: Record<string, string>;
  /** The child's clock minus the real one, ms. */
  readonly offsetMs: number;
  /** Move the child's clock by `ms` (either direction); the child sees it at its next time call. */
  jump(ms: number): void;
  /** Remove what libfaketime leaves of `child` in /dev/shm when it exits (see releaseShm). Returns the child. */
  watch<T extends ChildProcess>(child: T): T;
}

/**
 * libfaketime 0.9.10 (Debian 12; 0.9.11 has FAKETIME_DISABLE_SHM) opens a semaphore and a shared memory object named
 * by the pid in every process it is loaded into, and removes them only at a clean exit of the process that created
 * them — not after kill -9 or an abort, nor when the creator exec'd another program (setpriv → node: dev/process.ts),
 * so each such process would leave two files in /dev/shm. Call once the process is gone.
 */
export function releaseShm(pid: number): void {
  rmSync(`/dev/shm/faketime_shm_${pid}`, { force: true });
  rmSync(`/dev/shm/sem.faketime_sem_${pid}`, { force: true });
}

export function faketimeAvailable(): boolean {
  return existsSync(LIBFAKETIME);
}

/**
 * A timestamp file of its own under the run dir (swept with it) and the environment that puts a child under it.
 * The offset is kept across the child's restarts (a machine's wrong clock stays wrong when the program restarts).
 */
export function fakeTime(name: string, options: { fakeMonotonic?: boolean } = {}): FakeTime {
  if (!faketimeAvailable()) throw new Error(`libfaketime is missing (${LIBFAKETIME}): install Debian's faketime (build/prereqs.sh)`);
  const file = join(serviceDir(`faketime-${name}`), 'faketimerc');
  let offsetMs = 0;
  const write = () => {
    // Whole file at once (rename): the child re-reads it on every call and must never see half an offset.
    const seconds = (offsetMs / 1000).toFixed(3);
    writeFileSync(`${file}.new`, `${offsetMs < 0 ? '' : '+'}${seconds}\n`);
    renameSync(`${file}.new`, file);
  };
  write();
  return {
    env: {
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: file,
      // Read the file on every call (default: cached for 10 s): a jump is seen at once. ~4 µs per Date.now().
      FAKETIME_NO_CACHE: '1',
      ...(options.fakeMonotonic ? {} : { FAKETIME_DONT_FAKE_MONOTONIC: '1' }),
    },
    get offsetMs() { return offsetMs; },
    jump(ms: number) {
      offsetMs += ms;
      write();
    },
    watch(child) {
      const pid = child.pid;
      if (pid) child.once('exit', () => releaseShm(pid));
      return child;
    },
  };
}
