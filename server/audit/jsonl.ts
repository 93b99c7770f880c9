// The audit stream's JSON Lines file (#25): one record per line, only ever appended; when the next write would take
// it past maxBytes it is rotated (file → file.1 → file.2 …, the oldest beyond `keep` deleted), so reading
// file.keep … file.1, file in that order gives every record in order.
import { appendFile, rename, rm, stat } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditSink, StreamRecord } from './stream';

export interface JsonlFileOptions { path: string; maxBytes: number; keep: number }

export function jsonlLine(record: StreamRecord): string {
  return `${JSON.stringify(record.type === 'entry' ? { type: 'entry', ...record.entry } : { type: 'checkpoint', ...record.checkpoint })}\n`;
}

/** The seq of the last entry in the file (for resuming after a restart), if it holds one. */
export function lastStreamedSeq(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n').reverse();
  for (const line of lines) {
    try {
      const record = JSON.parse(line) as { type?: string; seq?: unknown };
      if (record.type === 'entry' && typeof record.seq === 'number') return record.seq;
    } catch {
      // A line cut short by a crash: look at the one before.
    }
  }
  return undefined;
}

export function jsonlFileSink(options: JsonlFileOptions): AuditSink {
  let size: number | undefined;
  const currentSize = async () => (size ??= await stat(options.path).then((s) => s.size, () => 0));
  const rotate = async () => {
    await rm(`${options.path}.${options.keep}`, { force: true });
    for (let i = options.keep - 1; i >= 1; i--) {
      if (existsSync(`${options.path}.${i}`)) await rename(`${options.path}.${i}`, `${options.path}.${i + 1}`);
    }
    await rename(options.path, `${options.path}.1`);
    size = 0;
  };
  return {
    name: 'file',
    async send(records) {
      mkdirSync(dirname(options.path), { recursive: true });
      // Each record whole in one file: rotate before a line that would not fit (a file holds at least one line).
      let chunk = '';
      let chunkBytes = 0;
      for (const record of records) {
        const line = jsonlLine(record);
        const bytes = Buffer.byteLength(line);
        const used = await currentSize() + chunkBytes;
        if (used > 0 && used + bytes > options.maxBytes) {
          if (chunk) await appendFile(options.path, chunk, { mode: 0o640 });
          size = (size ?? 0) + chunkBytes;
          chunk = '';
          chunkBytes = 0;
          await rotate();
        }
        chunk += line;
        chunkBytes += bytes;
      }
      if (chunk) await appendFile(options.path, chunk, { mode: 0o640 });
      size = (size ?? 0) + chunkBytes;
    },
    async close() {},
  };
}
