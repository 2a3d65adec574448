import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { readArchive } from '../cli/archive-source.js';
import { ArchiveReadError, AuditUsageError, parseS3Uri } from '../cli/audit-format.js';
import { archiveObjects } from '../functions/archive/layout.js';
import { ArchiveIndex, ArchiveLineError, parseArchiveLine } from '../shared/audit/archive-compare.js';
import { canonical, chainRecord, verifyChain } from '../shared/audit/chain.js';
import type { AuditRecord } from '../shared/audit/record.js';
import { chain, entry } from './archive-fixtures.js';

/*
 * `tollgate audit verify --archive`: the table's chains against the archive's copy of their records. The
 * tampering that matters here is the one `verifyChain` cannot see: a chain rewritten and re-hashed, its
 * head moved along.
 */

const at = (line: number, object = 'records/date=2026-03-01/payments-api.jsonl') => ({ object, line });

/** `n` records of one chain, a minute apart. */
function records(n: number, pipeline = 'payments-api'): AuditRecord[] {
  return chain(
    pipeline,
    Array.from({ length: n }, (_, i) =>
      entry({ time: new Date(Date.UTC(2026, 2, 1, 10, i)).toISOString(), summary: `APPROVE ${i + 1}` }),
    ),
  );
}

function indexOf(archived: readonly AuditRecord[]): ArchiveIndex {
  const index = new ArchiveIndex();
  archived.forEach((r, i) => {
    index.add(r, at(i + 1));
  });
  return index;
}

/** The chain rewritten from `seq` on: each record changed and re-hashed, each link recomputed. */
function rewrittenFrom(original: readonly AuditRecord[], seq: number): AuditRecord[] {
  const out: AuditRecord[] = original.slice(0, seq - 1);
  for (const r of original.slice(seq - 1)) {
    const { hash: _h, prevHash: _p, seq: _s, pipeline, ...content } = r;
    const changed =
      r.seq === seq ? { ...content, outcome: 'APPROVE' as const, summary: 'approved' } : content;
    out.push(chainRecord(changed, pipeline, out.at(-1)));
  }
  return out;
}

describe('ArchiveIndex.compare', () => {
  it('every archived record in the table unchanged: no problem; earlier and newer records are counted, not failed', async () => {
    const table = records(6);
    const result = await indexOf(table.slice(1, 4)).compare('payments-api', table);
    expect(result).toEqual({
      pipeline: 'payments-api',
      archived: 3,
      matched: 3,
      beforeArchive: { from: 1, to: 1 },
      notYetArchived: { from: 5, to: 6 },
      missingFromCopy: 0,
      problems: [],
    });
  });

  it('a whole archive lacking a record older than its grace fails it, wherever in the chain: the archive stopped', async () => {
    // The archive holds #1–3 (10:00–10:02); the table has #4–10 too (10:03–10:09), rewritten at will once the
    // archive's stream mapping was disabled: let off as "not archived yet" forever, they would never be seen.
    const table = records(10);
    const index = indexOf(table.slice(0, 3));
    const soon = await index.compare('payments-api', table, {
      whole: true,
      now: new Date('2026-03-01T10:30:00Z'),
    });
    expect(soon).toMatchObject({ notYetArchived: { from: 4, to: 10 }, problems: [] });
    const later = await index.compare('payments-api', table, {
      whole: true,
      now: new Date('2026-11-26T00:00:00Z'),
    });
    expect(later.notYetArchived).toBeNull();
    expect(later.problems.map((p) => [p.kind, p.seq])).toEqual(
      [4, 5, 6, 7, 8, 9, 10].map((seq) => ['not-archived', seq]),
    );
    expect(later.problems[0]!.detail).toMatch(/after the archive's last record of the chain \(#3\)/);
    // A part of the archive, or an export, lacks records for no such reason.
    const partial = await index.compare('payments-api', table, {
      whole: false,
      now: new Date('2026-11-26T00:00:00Z'),
    });
    expect(partial).toMatchObject({ notYetArchived: { from: 4, to: 10 }, problems: [] });
  });

  it('each tail record is judged by its own time: one appended a moment ago hides none older', async () => {
    // #1–2 archived; #3 written two days back (a stopped archive, or a rewritten tail: a late event's record
    // just appended reads so too until the archive writes it), #4 appended a moment ago.
    const table = chain(
      'payments-api',
      ['2026-03-05T10:00:00Z', '2026-03-05T10:01:00Z', '2026-03-03T08:00:00Z', '2026-03-05T10:30:00Z'].map(
        (time, i) => entry({ time, summary: `APPROVE ${i + 1}` }),
      ),
    );
    const index = indexOf(table.slice(0, 2));
    const now = new Date('2026-03-05T10:31:00Z');
    const result = await index.compare('payments-api', table, { whole: true, now });
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['not-archived', 3]]);
    expect(result.problems[0]?.detail).toMatch(/verify again in a minute/);
  });

  it('a record the archive lacks dated in the future fails, wherever it is and of any copy: a rewritten tail cannot wait out the grace', async () => {
    // #1–3 archived; the archive stopped; #4–5 (REJECTs) rewritten as APPROVEs, re-hashed, head moved, and dated
    // 2099: never older than the grace, they would read as "not archived yet" forever.
    const genuine = records(5);
    const index = indexOf(genuine.slice(0, 3));
    const forged = chain(
      'payments-api',
      genuine.map((r, i) =>
        entry({ time: i < 3 ? r.time : `2099-01-01T00:00:0${i}.000Z`, summary: `APPROVE ${i + 1}` }),
      ),
    );
    expect(forged.slice(0, 3)).toEqual(genuine.slice(0, 3));
    const now = new Date('2026-03-01T12:00:00Z');
    const whole = await index.compare('payments-api', forged, { whole: true, now });
    expect(whole.notYetArchived).toBeNull();
    expect(whole.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['not-archived', 4],
      ['not-archived', 5],
    ]);
    expect(whole.problems[0]!.detail).toBe(
      "the table's record payments-api#4 is not in the archive, and is dated in the future: 2099-01-01T00:00:03.000Z, later than now (2026-03-01T12:00:00.000Z) by more than the 15 minutes clocks may differ: Tollgate dates a record by its event or its clock, never later, so its time was written by hand (a tail rewritten after the archive stopped, dated so that it reads as not archived yet), or this machine's clock is behind",
    );
    // A simulation's store (dated by its scenarios, any day): not a forgery, only not archived yet.
    const simulated = await index.compare('payments-api', forged, { whole: true, now, simulated: true });
    expect(simulated.problems).toEqual([]);
    expect(simulated.notYetArchived).toEqual({ from: 4, to: 5 });
    // A partial copy lacks records for many reasons, but none dated so.
    const partial = await index.compare('payments-api', forged, { whole: false, now });
    expect(partial.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['not-archived', 4],
      ['not-archived', 5],
    ]);
    expect(partial.problems[0]!.detail).toMatch(
      /^the table's record payments-api#4 is not in the copy, and is dated in the future: 2099-/,
    );
    // Before the chain's first archived record, or in a chain the archive holds nothing of, alike.
    const orders = chain('orders-api', [entry({ time: '2099-01-01T00:00:00.000Z' })]);
    expect((await index.compare('orders-api', orders, { whole: true, now })).problems).toMatchObject([
      {
        kind: 'not-archived',
        seq: 1,
        detail: expect.stringMatching(/dated in the future: 2099-01-01T00:00:00\.000Z/),
      },
    ]);
    // Within the clocks' skew, a record written a moment ago is not archived yet, as before.
    const fresh = chain('payments-api', [
      ...genuine.slice(0, 3).map((r) => entry({ time: r.time, summary: r.summary })),
      entry({ time: '2026-03-01T12:14:00.000Z', summary: 'APPROVE 4' }),
    ]);
    expect(await index.compare('payments-api', fresh, { whole: true, now })).toMatchObject({
      notYetArchived: { from: 4, to: 4 },
      problems: [],
    });
  });

  it('a chain compared alone still knows when the archive began, from the other chains’ lines', async () => {
    const index = new ArchiveIndex();
    // payments-api's lines are read but left out, as `verify --pipeline orders-api` reads them.
    for (const r of records(3)) index.saw(r);
    const orders = chain(
      'orders-api',
      ['2026-03-01T08:00:00Z', '2026-03-01T12:00:00Z'].map((time, i) =>
        entry({ time, summary: `APPROVE ${i + 1}` }),
      ),
    );
    const result = await index.compare('orders-api', orders, {
      whole: true,
      now: new Date('2026-11-26T00:00:00Z'),
    });
    expect(result.beforeArchive).toEqual({ from: 1, to: 1 });
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['not-archived', 2]]);
  });

  it('a chain the archive holds nothing of: its records from before the archive began pass, later ones fail', async () => {
    const index = indexOf(records(3)); // payments-api, from 2026-03-01T10:00
    const orders = chain(
      'orders-api',
      ['2026-03-01T08:00:00Z', '2026-03-01T09:30:00Z', '2026-03-01T12:00:00Z'].map((time, i) =>
        entry({ time, summary: `APPROVE ${i + 1}` }),
      ),
    );
    const result = await index.compare('orders-api', orders, {
      whole: true,
      now: new Date('2026-11-26T00:00:00Z'),
    });
    expect(result.beforeArchive).toEqual({ from: 1, to: 2 });
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['not-archived', 3]]);
    expect(result.problems[0]!.detail).toMatch(/after the archive began/);
  });

  it('a chain rewritten and re-hashed, its head moved: the table verifies alone, the archive says rewritten', async () => {
    const original = records(5);
    const tampered = rewrittenFrom(original, 3);
    // The table's own verification cannot see it: every hash and link holds, the head names the last.
    const alone = await verifyChain(tampered, { seq: 5, hash: tampered[4]!.hash });
    expect(alone.ok).toBe(true);
    const result = await indexOf(original).compare('payments-api', tampered);
    expect(result.matched).toBe(2);
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['rewritten', 3],
      ['rewritten', 4],
      ['rewritten', 5],
    ]);
    expect(result.problems[0]?.detail).toMatch(
      /^the table's record payments-api#3 \(hash [0-9a-f]{12}…\) is not the one archived \([0-9a-f]{12}…, records\/date=2026-03-01\/payments-api\.jsonl, line 3\)$/,
    );
  });

  it('a record edited in place, its stored hash kept: rewritten, not counted as matching the archive', async () => {
    const original = records(3);
    const edited = original.map((r) => (r.seq === 2 ? { ...r, summary: 'APPROVE, nothing found' } : r));
    const result = await indexOf(original).compare('payments-api', edited);
    expect(result.matched).toBe(2);
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['rewritten', 2]]);
    expect(result.problems[0]?.detail).toMatch(
      /^the table's record payments-api#2 was changed after it was archived: it hashes to [0-9a-f]{12}…, not to the hash it and the archive \(records\/date=2026-03-01\/payments-api\.jsonl, line 2\) hold, [0-9a-f]{12}…$/,
    );
  });

  it('an intact table record whose archived copy was altered: the archive is named, the table is not', async () => {
    const original = records(3);
    const archived = original.map((r) => (r.seq === 2 ? { ...r, summary: 'changed in the archive' } : r));
    const result = await indexOf(archived).compare('payments-api', original);
    expect(result.matched).toBe(3);
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['changed-in-archive', 2]]);
  });

  it('the last records deleted and the head moved back: deleted, naming where the archive has them', async () => {
    const original = records(5);
    const result = await indexOf(original).compare('payments-api', original.slice(0, 3));
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['deleted', 4],
      ['deleted', 5],
    ]);
    expect(result.problems[0]?.detail).toContain('line 4');
  });

  it('a chain the table no longer has at all: every archived record is deleted', async () => {
    const result = await indexOf(records(2, 'ledger-api')).compare('ledger-api', []);
    expect(result.problems.map((p) => p.kind)).toEqual(['deleted', 'deleted']);
    expect(result.matched).toBe(0);
  });

  it('a table record between archived ones that the archive lacks: not-archived', async () => {
    const table = records(5);
    const result = await indexOf([table[0]!, table[1]!, table[3]!, table[4]!]).compare('payments-api', table);
    expect(result.problems).toEqual([
      expect.objectContaining({ kind: 'not-archived', seq: 3, pipeline: 'payments-api' }),
    ]);
    expect(result.beforeArchive).toBeNull();
    expect(result.notYetArchived).toBeNull();
  });

  it('a partial copy (a filtered export, one month of the bucket) lacking records between others: counted, not failed', async () => {
    const table = records(6);
    const result = await indexOf([table[0]!, table[2]!, table[4]!]).compare('payments-api', table, {
      whole: false,
    });
    expect(result).toMatchObject({
      matched: 3,
      missingFromCopy: 2,
      notYetArchived: { from: 6, to: 6 },
      problems: [],
    });
    // Still a rewritten record is one, whatever the copy.
    const rewritten = await indexOf([table[0]!, rewrittenFrom(table, 3)[2]!]).compare('payments-api', table, {
      whole: false,
    });
    expect(rewritten.problems.map((p) => [p.kind, p.seq])).toEqual([['rewritten', 3]]);
  });

  it('a record archived twice (a halved batch) is one; two different records at one place are a fork', async () => {
    const original = records(3);
    const index = indexOf([...original, original[1]!]);
    expect(index.records).toBe(3);
    expect(index.lines).toBe(4);
    expect((await index.compare('payments-api', original)).problems).toEqual([]);

    const forked = indexOf([...original, rewrittenFrom(original, 2)[1]!]);
    const result = await forked.compare('payments-api', original);
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['forked', 2]]);
    expect(result.problems[0]?.detail).toMatch(/line 2\) and [0-9a-f]{12}… \(.*line 4\)/);
  });

  it("a second table record at a place already read, or another chain's record in this chain, is named, not skipped", async () => {
    const original = records(3);
    const index = indexOf(original);
    // The same record read twice is one, as before.
    const again = await index.compare('payments-api', [...original, original[1]!]);
    expect(again).toMatchObject({ matched: 3, problems: [] });
    // A forged record 2 stored after the chain (a partition's other key): the genuine one answered for both.
    const forged = rewrittenFrom(original, 2)[1]!;
    const twice = await index.compare('payments-api', [...original, forged]);
    expect(twice.matched).toBe(3);
    expect(twice.problems).toEqual([
      {
        pipeline: 'payments-api',
        seq: 2,
        kind: 'rewritten',
        detail: expect.stringMatching(
          /^the table holds two records payments-api#2: [0-9a-f]{12}… and [0-9a-f]{12}…/,
        ),
      },
    ]);
    // A whole chain of another pipeline (seq 1, genesis, hashed right) forged into this chain's partition.
    const other = records(1, 'billing-api')[0]!;
    const foreign = await index.compare('payments-api', [...original, other]);
    expect(foreign.matched).toBe(3);
    expect(foreign.problems).toEqual([
      {
        pipeline: 'payments-api',
        seq: 1,
        kind: 'rewritten',
        detail: expect.stringMatching(
          /^the table's chain of payments-api holds a record of another pipeline, billing-api#1 /,
        ),
      },
    ]);
  });

  it('an archived record whose content does not hash to its hash was altered before the table inserted it', async () => {
    const original = records(2);
    const altered = { ...original[1]!, summary: 'changed by hand' };
    const result = await indexOf([original[0]!, altered]).compare('payments-api', [original[0]!, altered]);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'changed-in-archive', seq: 2 })]);
    expect(result.matched).toBe(2);
  });

  it('a second copy claiming the genuine hash with other content (a forged APPROVE): changed-in-archive naming both, whichever is read first', async () => {
    const original = records(3);
    const genuine = original[1]!;
    // Same place, same claimed hash, other content: what a copy written past the bucket's create-only rule
    // could hold. A listing may put either object first.
    const forged = { ...genuine, outcome: 'REJECT' as const, summary: 'APPROVE 2, nothing found' };
    const objects = {
      genuine: 'records/date=2026-03-01/payments-api-a.jsonl',
      forged: 'records/date=2026-03-01/payments-api-b.jsonl',
    };
    for (const order of [
      ['genuine', 'forged'],
      ['forged', 'genuine'],
    ] as const) {
      const index = new ArchiveIndex();
      index.add(original[0]!, at(1));
      for (const which of order) index.add(which === 'genuine' ? genuine : forged, at(2, objects[which]));
      index.add(original[2]!, at(3));
      expect(index.records, order.join(' first, ')).toBe(3);
      const result = await index.compare('payments-api', original);
      expect(result.matched, order.join(' first, ')).toBe(3);
      // One problem, of the archive, naming both copies: the genuine one and the altered one.
      expect(result.problems, order.join(' first, ')).toEqual([
        expect.objectContaining({ kind: 'changed-in-archive', seq: 2, pipeline: 'payments-api' }),
      ]);
      expect(result.problems[0]?.detail).toMatch(
        /^the archive holds two records payments-api#2 with hash [0-9a-f]{12}…: the one at records\/date=2026-03-01\/payments-api-a\.jsonl, line 2 hashes to it, the one at records\/date=2026-03-01\/payments-api-b\.jsonl, line 2 to [0-9a-f]{12}…: that one was altered/,
      );
      // The table's record matches the genuine copy, whichever was held: an edit in place to the forged
      // content is still rewritten.
      const edited = await index.compare(
        'payments-api',
        original.map((r) => (r.seq === 2 ? forged : r)),
      );
      expect(edited.problems.map((p) => [p.kind, p.seq])).toEqual([
        ['changed-in-archive', 2],
        ['rewritten', 2],
      ]);
    }
    // The same record twice is still one, and says nothing; two altered copies are both named.
    const twice = indexOf([...original, genuine]);
    expect((await twice.compare('payments-api', original)).problems).toEqual([]);
    const other = { ...genuine, summary: 'APPROVE 2, twice forged' };
    const both = new ArchiveIndex();
    both.add(forged, at(1, objects.forged));
    both.add(other, at(2, objects.genuine));
    const neither = await both.compare('payments-api', []);
    expect(neither.problems.filter((p) => p.kind === 'changed-in-archive')).toEqual([
      expect.objectContaining({
        seq: 2,
        detail: expect.stringMatching(
          /neither hashes to it: .*line 1 hashes to .*line 2 to .*both were altered$/,
        ),
      }),
    ]);
  });

  it('a table record whose time is no time (edited), not archived: named with the time as it came, not failing the comparison', async () => {
    const table = records(5);
    const noTime = (r: AuditRecord, time: unknown): AuditRecord => ({ ...r, time: time as string });
    const edited = [noTime(table[0]!, 'yesterday'), ...table.slice(1, 4), noTime(table[4]!, undefined)];
    const result = await indexOf(table.slice(1, 4)).compare('payments-api', edited, {
      whole: true,
      now: new Date('2026-03-02T00:00:00Z'),
    });
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['not-archived', 1],
      ['not-archived', 5],
    ]);
    expect(result.problems[0]?.detail).toContain(
      'written at "yesterday" (not a time), after the archive began',
    );
    expect(result.problems[1]?.detail).toContain(
      'and written with no time (the record has none), longer ago',
    );
  });

  it('keeps each chain to itself, and lists the chains it holds', async () => {
    const a = records(2, 'a-api');
    const b = records(3, 'b-api');
    const index = indexOf([...b, ...a]);
    expect(index.pipelines()).toEqual(['a-api', 'b-api']);
    expect((await index.compare('a-api', a)).archived).toBe(2);
    expect((await index.compare('b-api', b)).matched).toBe(3);
    expect((await index.compare('c-api', [])).archived).toBe(0);
  });
});

describe('parseArchiveLine', () => {
  const good = records(1)[0]!;

  it('a line JSON.parse would misread, or whose record cannot be hashed, is a bad line, named', () => {
    const line = (text: string) => {
      try {
        parseArchiveLine(text, at(3));
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    // A key given twice: JSON.parse keeps the last, so which the archive holds cannot be told.
    expect(line(canonical(good).replace('"seq":1,', '"seq":1,"seq":4,'))).toBe(
      'records/date=2026-03-01/payments-api.jsonl, line 3: seq: expected each key once, got the key "seq" twice',
    );
    // A number beyond a double reads as Infinity, which the canonical form cannot write.
    expect(line(canonical(good).replace('"actor":', '"evidence":{"a":1e400},"actor":'))).toMatch(
      /^records\/date=2026-03-01\/payments-api\.jsonl, line 3: \(the record\): expected a record whose content can be hashed, got .*Infinity/,
    );
    // A syntax error names its column, in words, on one line.
    expect(line('{"pipeline": "p",}')).toMatch(
      /line 3: \(the line\): expected one JSON object, got text that is not JSON at column 18 \(/,
    );
  });

  it('reads a canonical line, and an export line (keys in any order)', () => {
    expect(parseArchiveLine(canonical(good), at(1))).toEqual(good);
    expect(parseArchiveLine(JSON.stringify(good), at(1))).toEqual(good);
  });

  it.each([
    ['{"pipeline":', '(the line)', 'one JSON object', /text that is not JSON/],
    ['[1,2]', '(the line)', 'one JSON object (an audit record)', /^\[1,2\]$/],
    [JSON.stringify({ ...good, pipeline: '' }), 'pipeline', 'a pipeline name', /^""$/],
    [JSON.stringify({ ...good, seq: '3' }), 'seq', 'a whole number from 1', /^"3"$/],
    [JSON.stringify({ ...good, seq: 0 }), 'seq', 'a whole number from 1', /^0$/],
    [
      JSON.stringify({ ...good, hash: 'ABC' }),
      'hash',
      'a SHA-256 in lower-case hex (64 characters)',
      /^"ABC"$/,
    ],
    [
      JSON.stringify({ ...good, prevHash: undefined }),
      'prevHash',
      'a SHA-256 in lower-case hex (64 characters)',
      /^nothing$/,
    ],
  ])(
    'refuses %s naming the object, the line, the field, what was expected and what came',
    (text, field, expected, got) => {
      let error: unknown;
      try {
        parseArchiveLine(text, at(7));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ArchiveLineError);
      const e = error as ArchiveLineError;
      expect(e.at).toEqual(at(7));
      expect(e.field).toBe(field);
      expect(e.expected).toBe(expected);
      expect(e.got).toMatch(got);
      expect(e.message).toMatch(/^records\/date=2026-03-01\/payments-api\.jsonl, line 7: /);
    },
  );
});

const tmp = mkdtempSync(join(tmpdir(), 'tollgate-archive-read-'));

/** Writes the archive's objects for `batches` (each as one stream batch) under `folder`, as `aws s3 sync` would. */
function syncedArchive(folder: string, batches: readonly (readonly AuditRecord[])[]): string[] {
  const keys: string[] = [];
  for (const batch of batches) {
    for (const object of archiveObjects(batch)) {
      const file = join(folder, object.key);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, object.body);
      keys.push(object.key);
    }
  }
  return keys;
}

describe('readArchive: a folder or a file', () => {
  it("reads every .jsonl under a synced folder, at any depth, and nothing else; --pipeline keeps that chain's", async () => {
    const folder = join(tmp, 'synced');
    const payments = records(4);
    const ledger = records(2, 'ledger-api');
    syncedArchive(folder, [payments.slice(0, 2), [...payments.slice(2), ...ledger]]);
    writeFileSync(join(folder, 'records', 'README.txt'), 'not records');
    const index = new ArchiveIndex();
    const read = await readArchive(folder, index);
    expect(read).toEqual({ name: `the folder ${folder}`, objects: 3, whole: true });
    expect(index.pipelines()).toEqual(['ledger-api', 'payments-api']);
    expect(index.records).toBe(6);

    const one = new ArchiveIndex();
    await readArchive(folder, one, { pipeline: 'ledger-api' });
    expect(one.pipelines()).toEqual(['ledger-api']);
  });

  it('reads an export (one .jsonl file, blank lines and CRLF allowed)', async () => {
    const file = join(tmp, 'export.jsonl');
    writeFileSync(
      file,
      `${records(3)
        .map((r) => JSON.stringify(r))
        .join('\r\n')}\r\n\r\n`,
    );
    const index = new ArchiveIndex();
    // One file is an export, perhaps filtered: a partial copy.
    expect(await readArchive(file, index)).toEqual({ name: file, objects: 1, whole: false });
    expect(index.records).toBe(3);
  });

  it('a bad line fails the read, naming the file and its line', async () => {
    const file = join(tmp, 'bad.jsonl');
    const [one, two] = records(2);
    writeFileSync(file, `${canonical(one)}\n${canonical({ ...two, seq: -2 })}\n`);
    await expect(readArchive(file, new ArchiveIndex())).rejects.toThrow(
      `${file}, line 2: seq: expected a whole number from 1, got -2`,
    );
  });

  it('a path that does not exist, or a folder without records, is a usage error that says what to give', async () => {
    await expect(readArchive(join(tmp, 'nowhere'), new ArchiveIndex())).rejects.toThrow(
      /no such file or folder \(expected s3:\/\/BUCKET\[\/PREFIX\], a folder the archive was synced to, or a \.jsonl file\)/,
    );
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    const error = await readArchive(empty, new ArchiveIndex()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditUsageError);
    expect((error as Error).message).toContain('aws s3 sync s3://BUCKET/records');
  });
});

describe('readArchive: the bucket (S3 over HTTP, answered as S3 answers)', () => {
  const servers: { close(): void }[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  /** A version of a key, or a delete marker; a key's list is oldest first. */
  interface Stored {
    readonly id: string;
    readonly body?: string;
    readonly marker?: boolean;
    readonly modified: string;
  }

  /**
   * A versioned bucket as S3 keeps one: ListObjectVersions (keys in order, a key's entries newest first, cut
   * into pages of `pageSize` entries, KeyMarker and VersionIdMarker), ListObjectsV2 (the current versions
   * alone, as a reader of the current objects sees them), GetObject with or without a version id.
   */
  class Bucket {
    readonly keys = new Map<string, Stored[]>();
    private n = 0;
    constructor(readonly pageSize = 1000) {}
    put(key: string, body: string): string {
      const id = `v${++this.n}`;
      const list = this.keys.get(key) ?? [];
      list.push({ id, body, modified: new Date(Date.UTC(2026, 2, 1, 10, this.n)).toISOString() });
      this.keys.set(key, list);
      return id;
    }
    /** A delete marker on top of the key, as a DeleteObject without a version id, or a lifecycle expiration, puts. */
    hide(key: string): string {
      const id = `m${++this.n}`;
      this.keys.get(key)?.push({ id, marker: true, modified: new Date(Date.UTC(2026, 2, 2)).toISOString() });
      return id;
    }
    private entries(prefix: string): { key: string; s: Stored; latest: boolean }[] {
      return [...this.keys.keys()]
        .filter((k) => k.startsWith(prefix))
        .sort()
        .flatMap((key) => {
          const list = this.keys.get(key) ?? [];
          return [...list].reverse().map((s, i) => ({ key, s, latest: i === 0 }));
        });
    }
    answer(url: URL): { status: number; body: string } {
      const q = url.searchParams;
      const prefix = q.get('prefix') ?? '';
      if (q.has('versions')) {
        const all = this.entries(prefix);
        const keyMarker = q.get('key-marker');
        const versionMarker = q.get('version-id-marker');
        let start = 0;
        if (keyMarker !== null) {
          const at = all.findIndex((e) => e.key === keyMarker && e.s.id === versionMarker);
          start = at >= 0 ? at + 1 : all.findIndex((e) => e.key > keyMarker);
          if (start < 0) start = all.length;
        }
        const page = all.slice(start, start + this.pageSize);
        const truncated = start + this.pageSize < all.length;
        const last = page.at(-1);
        const entry = ({ key, s, latest }: (typeof all)[number]) =>
          s.marker
            ? `<DeleteMarker><Key>${key}</Key><VersionId>${s.id}</VersionId><IsLatest>${latest}</IsLatest><LastModified>${s.modified}</LastModified></DeleteMarker>`
            : `<Version><Key>${key}</Key><VersionId>${s.id}</VersionId><IsLatest>${latest}</IsLatest><LastModified>${s.modified}</LastModified><ETag>"e"</ETag><Size>${s.body?.length ?? 0}</Size><StorageClass>STANDARD</StorageClass></Version>`;
        return {
          status: 200,
          body:
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
            `<Name>archive</Name><Prefix>${prefix}</Prefix><MaxKeys>${this.pageSize}</MaxKeys><IsTruncated>${truncated}</IsTruncated>` +
            (truncated && last
              ? `<NextKeyMarker>${last.key}</NextKeyMarker><NextVersionIdMarker>${last.s.id}</NextVersionIdMarker>`
              : '') +
            page.map(entry).join('') +
            '</ListVersionsResult>',
        };
      }
      if (q.get('list-type') === '2') {
        const current = this.entries(prefix).filter((e) => e.latest && !e.s.marker);
        return {
          status: 200,
          body:
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
            `<Name>archive</Name><Prefix>${prefix}</Prefix><KeyCount>${current.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>` +
            current
              .map(
                (e) =>
                  `<Contents><Key>${e.key}</Key><LastModified>${e.s.modified}</LastModified><ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>`,
              )
              .join('') +
            '</ListBucketResult>',
        };
      }
      const key = decodeURIComponent(url.pathname.replace(/^\/archive\//, ''));
      const list = this.keys.get(key) ?? [];
      const version = q.get('versionId');
      const found = version === null ? list.at(-1) : list.find((s) => s.id === version);
      if (!found || found.marker) {
        return {
          status: 404,
          body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>',
        };
      }
      return { status: 200, body: found.body ?? '' };
    }
  }

  /** A local S3: `answer` maps each request (method and URL) to its answer. */
  async function s3Answering(
    answer: (url: URL) => { status: number; body: string },
  ): Promise<{ client: S3Client; urls: string[] }> {
    const urls: string[] = [];
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      urls.push(`${req.method} ${url.pathname}${url.search}`);
      const a = answer(url);
      res.writeHead(a.status, { 'content-type': 'application/xml', 'x-amz-request-id': 'R' });
      res.end(a.body);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
    });
    return { client, urls };
  }

  /** The archive's objects for `batches` (each as one stream batch), each written once. */
  function bucketOf(batches: readonly (readonly AuditRecord[])[], pageSize?: number) {
    const bucket = new Bucket(pageSize);
    const keys: string[] = [];
    const versions: string[] = [];
    for (const batch of batches) {
      for (const object of archiveObjects(batch)) {
        versions.push(bucket.put(object.key, object.body));
        keys.push(object.key);
      }
    }
    return { bucket, keys, versions };
  }

  it('lists every version under records/ page by page, reads each by its version id, and names each object by its S3 URI', async () => {
    const payments = records(3);
    const { bucket, keys, versions } = bucketOf([payments.slice(0, 1), payments.slice(1)], 1);
    const notes = bucket.put('records/date=2026-03-01/notes.txt', 'not records');
    const { client, urls } = await s3Answering((url) => bucket.answer(url));
    const index = new ArchiveIndex();
    const read = await readArchive('s3://archive', index, { s3: client });
    expect(read).toEqual({ name: 's3://archive/records/', objects: 2, versions: 2, whole: true });
    expect(index.records).toBe(3);
    // One entry a page (notes.txt sorts first): three pages, each after the last key and version listed.
    const lists = urls.filter((u) => /[?&]versions(=|&|$)/.test(u));
    expect(lists).toHaveLength(3);
    expect(lists[0]).not.toContain('key-marker');
    expect(lists[1]).toContain(`key-marker=${encodeURIComponent('records/date=2026-03-01/notes.txt')}`);
    expect(lists[1]).toContain(`version-id-marker=${notes}`);
    expect(lists[2]).toContain(`key-marker=${encodeURIComponent(keys[0]!)}`);
    expect(lists[2]).toContain(`version-id-marker=${versions[0]}`);
    expect(urls.filter((u) => u.includes('list-type=2'))).toEqual([]);
    // Each object read once, by its version id; the .txt beside them is not read.
    expect(
      urls
        .filter((u) => u.includes('x-id=GetObject'))
        .map((u) => {
          const url = new URL(u.split(' ')[1]!, 'http://localhost');
          return `${decodeURIComponent(url.pathname)} ${url.searchParams.get('versionId')}`;
        }),
    ).toEqual(keys.map((k, i) => `/archive/${k} ${versions[i]}`));
    const result = await index.compare('payments-api', payments);
    expect(result).toMatchObject({ matched: 3, problems: [] });
    // Problems name the object as S3 does.
    const moved = await index.compare('payments-api', payments.slice(0, 2));
    expect(moved.problems[0]?.detail).toContain(`(s3://archive/${keys[1]}, line 2)`);
  });

  it('an object hidden behind a delete marker: its locked version is still read and compared, and the object is reported (hidden)', async () => {
    // A lifecycle expiration rule puts a delete marker on the current version: Object Lock allows it, and the
    // bucket policy's delete deny is not asked. A listing of the current objects, and Athena, see nothing.
    const payments = records(4);
    const { bucket, keys, versions } = bucketOf([payments.slice(0, 2), payments.slice(2)], 2);
    const marker = bucket.hide(keys[0]!);
    const { client, urls } = await s3Answering((url) => bucket.answer(url));
    const index = new ArchiveIndex();
    const read = await readArchive('s3://archive', index, { s3: client });
    expect(read).toMatchObject({ objects: 2, versions: 2 });
    // Records #1–2 still count as archived: the table deleting them would still be seen.
    expect(index.records).toBe(4);
    expect(urls.some((u) => u.includes(`versionId=${versions[0]}`))).toBe(true);
    const result = await index.compare('payments-api', payments);
    expect(result.matched).toBe(4);
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([['hidden', 1]]);
    const detail = result.problems[0]!.detail;
    expect(detail).toContain(`s3://archive/${keys[0]} is hidden behind a delete marker (version ${marker}`);
    expect(detail).toContain(`its version(s) ${versions[0]}, `);
    const gone = await index.compare('payments-api', payments.slice(2));
    expect(gone.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['hidden', 1],
      ['deleted', 1],
      ['deleted', 2],
    ]);
    expect(gone.problems[1]!.detail).toContain(`s3://archive/${keys[0]} (version ${versions[0]}), line 1`);
  });

  it('an object overwritten by a newer version: every version read, oldest first; the forged record is a fork, the object overwritten', async () => {
    // Once someone removes the create-only rule from the bucket policy, a PUT adds a version over the locked
    // one: readers of the current version (and Athena) see only the new one.
    const payments = records(3);
    const { bucket, keys, versions } = bucketOf([payments], 1);
    const forged = rewrittenFrom(payments, 2);
    const newer = bucket.put(keys[0]!, archiveObjects(forged)[0]!.body);
    const { client } = await s3Answering((url) => bucket.answer(url));
    const index = new ArchiveIndex();
    expect(await readArchive('s3://archive', index, { s3: client })).toMatchObject({
      objects: 1,
      versions: 2,
    });
    // The table rewritten as the forged version says: the original still shows it.
    const result = await index.compare('payments-api', forged);
    expect(result.problems.map((p) => [p.kind, p.seq])).toEqual([
      ['overwritten', 1],
      ['forked', 2],
      ['rewritten', 2],
      ['forked', 3],
      ['rewritten', 3],
    ]);
    const overwritten = result.problems[0]!.detail;
    expect(overwritten).toContain(`s3://archive/${keys[0]} has 2 versions (${versions[0]}, `);
    expect(overwritten).toContain(`; ${newer}, `);
    // The original is the one held, the newer the other of the fork.
    expect(result.problems[1]!.detail).toContain(
      `(s3://archive/${keys[0]} (version ${versions[0]}), line 2) and`,
    );
    expect(result.problems[1]!.detail).toContain(`(s3://archive/${keys[0]} (version ${newer}), line 2)`);
    // --pipeline reads another chain: the object's problems are not its.
    const other = new ArchiveIndex();
    await readArchive('s3://archive', other, { s3: client, pipeline: 'ledger-api' });
    expect(other.ownProblems()).toEqual([]);
  });

  it('access denied: an error naming the bucket and what reading it needs', async () => {
    const { client } = await s3Answering(() => ({
      status: 403,
      body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R</RequestId></Error>',
    }));
    const error = await readArchive('s3://archive/records/', new ArchiveIndex(), { s3: client }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ArchiveReadError);
    expect((error as Error).message).toMatch(
      /^reading the archive s3:\/\/archive\/records\/: AccessDenied: Access Denied \(reading the archive needs s3:ListBucketVersions and s3:GetObjectVersion on the bucket, and kms:Decrypt on its key\)$/,
    );
  });

  it('a bucket with no records under the prefix (or only delete markers) is a usage error, not "nothing to compare"', async () => {
    const { client } = await s3Answering((url) => new Bucket().answer(url));
    await expect(readArchive('s3://archive/elsewhere/', new ArchiveIndex(), { s3: client })).rejects.toThrow(
      'no .jsonl objects under s3://archive/elsewhere/',
    );
  });

  it('parses s3:// URIs: records/ by default, a prefix as given; refuses what is not a bucket', () => {
    expect(parseS3Uri('s3://tollgate-archive')).toEqual({ bucket: 'tollgate-archive', prefix: 'records/' });
    expect(parseS3Uri('s3://tollgate-archive/')).toEqual({ bucket: 'tollgate-archive', prefix: 'records/' });
    expect(parseS3Uri('s3://tollgate-archive/records/date=2026-03')).toEqual({
      bucket: 'tollgate-archive',
      prefix: 'records/date=2026-03',
    });
    for (const bad of ['s3://', 's3://A_Bucket', 's3:///records'])
      expect(() => parseS3Uri(bad)).toThrow(AuditUsageError);
  });
});
