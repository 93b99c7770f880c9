// The audit search's time range (server/lifecycle/audit-search.ts) turns [from, to) into a seq range by a binary
// search that assumes `at` grows with seq; with several instances a row may carry a time up to the clock skew earlier
// than the row before it. Property: on a table whose times jitter within that skew, every time range, with or without
// a user and a cursor, returns exactly what a scan of the table returns, newest first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { auditPage, CLOCK_SKEW_MS } from '../../server/lifecycle/audit-search';
import { openStore, type Store } from '../../server/storage/db';

const ROWS = 3000;
const START = Date.parse('2026-11-01T00:00:00Z');
const USERS = ['alice', 'bob', 'carol'];

describe('audit search by time range, with clocks that disagree', () => {
  let store: Store;
  const rows: { seq: number; at: number; actor: string; subject: string }[] = [];

  beforeAll(async () => {
    store = openStore('sqlite::memory:');
    await store.migrate();
    // One row a second on average, each stamped up to the skew early or late: out of seq order, as from two instances.
    for (let seq = 1; seq <= ROWS; seq++) {
      const jitter = Math.round(Math.sin(seq * 12.9898) * 43758.5453 % 1 * (CLOCK_SKEW_MS / 2));
      rows.push({ seq, at: START + seq * 1000 + jitter, actor: USERS[seq % 3]!, subject: USERS[(seq * 7) % 3]! });
    }
    for (let i = 0; i < rows.length; i += 500) {
      await store.db.insertInto('audit').values(rows.slice(i, i + 500).map((r) => ({ ...r, action: 'x', prev_hash: '0', hash: '0' }))).execute();
    }
  });
  afterAll(async () => {
    await store?.close();
  });

  it('returns exactly the rows in range, newest first, whatever the range, user and cursor', async () => {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: -120, max: ROWS + 120 }), fc.integer({ min: 0, max: 600 }), fc.option(fc.constantFrom(...USERS), { nil: undefined }),
      fc.option(fc.integer({ min: 1, max: ROWS + 1 }), { nil: undefined }),
      async (startS, lengthS, user, before) => {
        const fromMs = START + startS * 1000;
        const toMs = fromMs + lengthS * 1000;
        const expected = rows
          .filter((r) => r.at >= fromMs && r.at < toMs && (!user || r.actor === user || r.subject === user) && (before === undefined || r.seq < before))
          .map((r) => r.seq).reverse().slice(0, 40);
        const page = await auditPage(store.db, { fromMs, toMs, ...(user ? { user } : {}) }, { order: 'desc', limit: 40, ...(before ? { from: before } : {}) });
        expect(page.map((r) => r.seq)).toEqual(expected);
      },
    ), { numRuns: 300 });
  });
});
