// The companion's account of each ended grant's sessions, for the server's audit log (POST /v1/bastion/sessions/ended).
// A report the server did not take (down, overloaded) is kept and sent again after the next (re)connect, oldest first,
// so the audit log gets every session's end even across an outage.

/** What became of an ended grant's recorded sessions, as the companion tells the server. */
export interface SessionsEndedReport {
  grantId: string;
  /** Recorded sshd pids whose connection was still open: the companion ended it. */
  killed: number[];
  /** Recorded sshd pids whose connection had already closed. */
  closed: number[];
  /** What each session's connection carried and where it came from, for the sessions whose counters were seen. */
  traffic?: SessionTraffic[];
  /** Set when the sessions were ended because the grant was taken back with a new key (the grant goes on). */
  cause?: 'rekeyed';
}

/** One session's counters as reported: for a killed session read right before it was ended, else the last sample. */
export interface SessionTraffic {
  pid: number;
  bytesFromClient: number;
  bytesToClient: number;
  from?: string;
  /** When the kernel's counters were read (ISO). */
  countedAt: string;
}

/** Reports kept for a server that did not take them, at most (the oldest go first). */
const MAX_UNSENT_REPORTS = 1_000;

export interface ReportQueueOptions {
  fetch: typeof fetch;
  /** The server's POST /v1/bastion/sessions/ended. */
  url: string;
  headers: Record<string, string>;
  /** Aborted when the companion stops: nothing more is sent. */
  stopped: AbortSignal;
  onReported?: (report: SessionsEndedReport) => void;
  warn?: (obj: object, msg?: string) => void;
}

export interface ReportQueue {
  /** Queue a report and send what is queued. */
  add(report: SessionsEndedReport): void;
  /** Send the reports not yet taken, oldest first; stop at the first the server does not take (kept for later). */
  send(): Promise<void>;
  /** Resolves once the sending under way is over. */
  settled(): Promise<void>;
}

export function reportQueue(options: ReportQueueOptions): ReportQueue {
  const unsent: SessionsEndedReport[] = [];
  let reporting: Promise<void> = Promise.resolve();

  function send(): Promise<void> {
    reporting = reporting.then(async () => {
      while (unsent.length > 0 && !options.stopped.aborted) {
        const report = unsent[0]!;
        try {
          const response = await options.fetch(options.url, {
            method: 'POST', headers: { ...options.headers, 'content-type': 'application/json' }, body: JSON.stringify(report), signal: AbortSignal.timeout(10_000),
          });
          // 4xx other than 429: the server will never take this one (unknown grant, malformed): do not hold the rest.
          if (!response.ok && (response.status >= 500 || response.status === 429)) throw new Error(`sessions/ended answered ${response.status}`);
          if (!response.ok) options.warn?.({ grantId: report.grantId, status: response.status }, 'the server refused the report of ended ssh sessions');
          else options.onReported?.(report);
          unsent.shift();
        } catch (error) {
          options.warn?.({ grantId: report.grantId, err: String(error) }, 'could not report ended ssh sessions; will retry after reconnecting');
          return;
        }
      }
    });
    return reporting;
  }

  return {
    add(report) {
      unsent.push(report);
      if (unsent.length > MAX_UNSENT_REPORTS) unsent.shift();
      void send();
    },
    send,
    settled: () => reporting,
  };
}
